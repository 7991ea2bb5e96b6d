// An inert stand-in for Venafi's vcert SDK, ours, used only by hack/cert-manager/build.sh for cert-manager's
// controller: the Go module proxy refuses every vcert v5.13 version (403), which the controller imports for
// its Venafi issuer. It has the few names the controller compiles against; NewClient always fails, so a
// Venafi Issuer reports an error and every other issuer works as released.
module github.com/Venafi/vcert/v5

go 1.26.0
