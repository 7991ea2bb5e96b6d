"""The pool API as pure data and rules: types, validation, defaulting and v1alpha1 <-> v1alpha2 conversion.

No I/O here: the webhook server (an I/O edge) calls these functions.
"""
