package main

import "github.com/spf13/cobra"

// addGraphCommand registers its commands on root. Placeholder until the owning package lands.
func addGraphCommand(root *cobra.Command, a *app) {}
