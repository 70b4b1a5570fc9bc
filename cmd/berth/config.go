package main

import "github.com/spf13/cobra"

// addConfigCommands registers its commands on root. Placeholder until the owning package lands.
func addConfigCommands(root *cobra.Command, a *app) {}
