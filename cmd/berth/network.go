package main

import "github.com/spf13/cobra"

// addNetworkCommands registers its commands on root. Placeholder until the owning package lands.
func addNetworkCommands(root *cobra.Command, a *app) {}
