package main

import "github.com/spf13/cobra"

// addComposeCommands registers its commands on root. Placeholder until the owning package lands.
func addComposeCommands(root *cobra.Command, a *app) {}
