// Command webhook is cert-manager's webhook: validation, mutation and conversion of cert-manager's
// resources, served over TLS with a certificate from its own dynamic CA (kept in a Secret). The flags are
// the root module's own webhook flags (pkg/webhook/options), so they mean what they mean upstream; --config
// (a WebhookConfiguration file) is not offered, the release manifest passes flags only.
package main

import (
	"context"

	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/cert-manager/cert-manager/incluster-ipam-binaries/cli"
	"github.com/cert-manager/cert-manager/internal/apis/config/webhook/validation"
	cmwebhook "github.com/cert-manager/cert-manager/internal/webhook"
	logf "github.com/cert-manager/cert-manager/pkg/logs"
	"github.com/cert-manager/cert-manager/pkg/webhook/options"
)

func main() {
	cfg, err := options.NewWebhookConfiguration() // upstream's defaults (ports 6443 and 6080, ...)
	if err != nil {
		panic(err)
	}
	fs := cli.NewFlagSet("webhook")
	options.AddConfigFlags(fs, cfg)
	ctrl.SetLogger(logf.Log) // the server is controller-runtime's webhook server
	cli.Main(cli.Command{
		Name:         "webhook",
		Summary:      "validates, defaults and converts cert-manager's resources for the API server",
		Flags:        fs,
		Logging:      &cfg.Logging,
		FeatureGates: &cfg.FeatureGates,
		Validate:     func() error { return validation.ValidateWebhookConfiguration(cfg, nil).ToAggregate() },
		Run: func(ctx context.Context) error {
			srv, err := cmwebhook.NewCertManagerWebhookServer(logf.FromContext(ctx), *cfg)
			if err != nil {
				return err
			}
			return srv.Run(ctx)
		},
	})
}
