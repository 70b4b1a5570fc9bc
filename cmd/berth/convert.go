package main

import "github.com/spf13/cobra"

// addConvertCommand registers its commands on root. Placeholder until the owning package lands.
func addConvertCommand(root *cobra.Command, a *app) {}
