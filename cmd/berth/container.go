package main

import "github.com/spf13/cobra"

// addContainerCommands registers its commands on root. Placeholder until the owning package lands.
func addContainerCommands(root *cobra.Command, a *app) {}
