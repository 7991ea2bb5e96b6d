# The two entry points; both install everything they need on a fresh machine.
.PHONY: run test e2e release image
run:  ## local control plane (+ provider, later) ready for kubectl apply; Ctrl-C stops it
	@bash hack/run.sh
test: ## the whole test suite: static checks, unit, property and integration tests
	@bash hack/test.sh
e2e:  ## the end-to-end tests alone (tests/e2e), after installing what they need
	@bash hack/test.sh --e2e
release: ## out/ipam-components.yaml and out/metadata.yaml (clusterctl release artifacts)
	@bash hack/bootstrap.sh --python-only && .venv/bin/python hack/release.py
image: ## the provider image from the Dockerfile with buildah (no daemon), saved as an OCI archive in the cache
	@bash hack/image/build.sh
