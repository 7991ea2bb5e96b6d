// Package cli is the start-up the three commands share: signal handling, cert-manager's logging, flag
// parsing with --help, feature gates and the exit code.
package cli

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/pflag"
	logsapi "k8s.io/component-base/logs/api/v1"

	cmdutil "github.com/cert-manager/cert-manager/internal/cmd/util"
	logf "github.com/cert-manager/cert-manager/pkg/logs"
	"github.com/cert-manager/cert-manager/pkg/util"
	utilfeature "github.com/cert-manager/cert-manager/pkg/util/feature"
)

// Command is one binary: its flags fill a configuration that Validate checks and Run serves until the
// context ends (SIGTERM or SIGINT).
type Command struct {
	Name         string
	Summary      string
	Flags        *pflag.FlagSet
	Logging      *logsapi.LoggingConfiguration
	FeatureGates *map[string]bool
	Validate     func() error
	Run          func(ctx context.Context) error
}

// NewFlagSet returns a flag set that reports errors instead of exiting, so that Main decides the exit code.
func NewFlagSet(name string) *pflag.FlagSet {
	return pflag.NewFlagSet(name, pflag.ContinueOnError)
}

// Main parses os.Args, applies the feature gates and logging options, and runs the command; it exits 0 on
// --help or a clean shutdown, 1 on an error (2 on bad flags), as upstream's commands do.
func Main(c Command) {
	ctx, exit := cmdutil.SetupExitHandler(context.Background(), cmdutil.GracefulShutdown)
	defer exit() // may call os.Exit, so it runs last

	logf.InitLogs()
	defer logf.FlushLogs()
	ctx = logf.NewContext(ctx, logf.Log, c.Name)
	log := logf.FromContext(ctx)

	c.Flags.Usage = func() {
		fmt.Fprintf(os.Stderr, "%s: %s\n\nUsage:\n  %s [flags]\n\nFlags:\n%s", c.Name, c.Summary, c.Name,
			c.Flags.FlagUsages())
	}
	if err := c.Flags.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return
		}
		fmt.Fprintf(os.Stderr, "%s: %v\n", c.Name, err)
		cmdutil.SetExitCodeValue(2)
		return
	}
	if err := setUp(c); err != nil {
		log.Error(err, "invalid configuration")
		cmdutil.SetExitCode(err)
		return
	}
	v := util.VersionInfo()
	log.Info("starting cert-manager "+c.Name, "version", v.GitVersion, "go_version", v.GoVersion,
		"platform", v.Platform)
	if err := c.Run(ctx); err != nil {
		log.Error(err, "exiting on error")
		cmdutil.SetExitCode(err)
	}
}

func setUp(c Command) error {
	if err := utilfeature.DefaultMutableFeatureGate.SetFromMap(*c.FeatureGates); err != nil {
		return fmt.Errorf("feature gates: %w", err)
	}
	if err := c.Validate(); err != nil {
		return err
	}
	return logf.ValidateAndApply(c.Logging)
}
