# The two entry points; both install everything they need on a fresh machine.
.PHONY: run test
run:  ## local control plane (+ provider, later) ready for kubectl apply; Ctrl-C stops it
	@bash hack/run.sh
test: ## the whole test suite: static checks, unit, property and integration tests
	@bash hack/test.sh
