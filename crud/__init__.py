"""All SQL of the service: plain functions, session first, raising domain errors, never HTTP."""
