"""One router per resource; a resource's id in a path is `{name:digits}`.

`digits` matches what Starlette's `int` does, so `/products/abc` is no path at all (404), but
hands the route the text: its parameter validates it (422 outside 1-2147483647) however long
it is. Starlette's `int` would convert it here, and Python refuses (a 500) to convert more than
4,300 digits.
"""

from starlette.convertors import StringConvertor, register_url_convertor


class DigitsConvertor(StringConvertor):
    regex = "[0-9]+"


register_url_convertor("digits", DigitsConvertor())
