package main

import "github.com/spf13/cobra"

// addImageCommands registers its commands on root. Placeholder until the owning package lands.
func addImageCommands(root *cobra.Command, a *app) {}
