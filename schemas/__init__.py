"""What goes over the wire: request and response bodies, validated before any SQL runs."""
