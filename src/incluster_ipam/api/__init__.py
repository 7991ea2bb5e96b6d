"""The pool API as pure data and rules: types, validation, defaulting and v1alpha1 <-> v1alpha2 conversion.

No I/O here: the webhook server (an I/O edge) calls these functions. Modules: `constants`, `models`,
`errors` (statuses rendered like Kubernetes), `validation` (IP pools, delete), `prefix_validation`,
`overlap` (warnings), `conversion`, `crds` (the CRD manifests), `goparse`/`gofmt` (Go-exact texts).
"""
