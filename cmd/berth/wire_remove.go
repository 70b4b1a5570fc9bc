package main

import (
	"errors"
	"os"

	"github.com/spf13/cobra"
)

// wireRemoveCmdName is the hidden command a container's monitor runs to remove the container
// when it exits (`run -d --rm`).
const wireRemoveCmdName = "__remove-container"

// wireRemoveArgs is the command line, without the container ID, that removes a container and
// everything the engine made for it, with this process's state roots. Nil when the
// executable cannot be found.
func wireRemoveArgs(a *app) []string {
	exe, err := os.Executable()
	if err != nil {
		return nil
	}
	return []string{exe, "--root", a.opts.Root, "--run-root", a.opts.RunRoot, wireRemoveCmdName}
}

// wireRemoveCmd is `berth __remove-container ID...`: remove the containers (running or not),
// their network sandboxes, writable layers and anonymous volumes. Missing ones are skipped.
func wireRemoveCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:    wireRemoveCmdName + " ID...",
		Short:  "Remove containers with everything made for them (run by a container's monitor)",
		Hidden: true,
		Args:   cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			w, err := wireOpen(a, false)
			if err != nil {
				return err
			}
			defer w.Close()
			e, err := wireEngine(a, w, "berth "+wireRemoveCmdName)
			if err != nil {
				return err
			}
			var errs []error
			for _, id := range args {
				errs = append(errs, e.RemoveContainerVolumes(ctx, id))
			}
			return errors.Join(errs...)
		},
	}
}
