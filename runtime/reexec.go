package runtime

// Reexec runs the re-executed modes of the berth binary (container init, monitor) and reports
// whether it handled one; main returns immediately when it did.
func Reexec() bool { return false }
