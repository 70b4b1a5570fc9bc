package main

import "github.com/spf13/cobra"

// addVolumeCommands registers its commands on root. Placeholder until the owning package lands.
func addVolumeCommands(root *cobra.Command, a *app) {}
