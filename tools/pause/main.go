// pause is the process that holds a pod's namespaces open: it sleeps until told to stop and reaps the
// orphans that get re-parented to it (it is PID 1 of the pod when the PID namespace is shared).
// Built by scripts/build-node.sh for the local node's sandbox image; no registry is needed for it.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "-v" {
		fmt.Println("pause (taskplatform local node)")
		return
	}
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "pause: warning: not PID 1, orphans are reaped only when this is PID 1")
	}
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range signals {
		if sig != syscall.SIGCHLD {
			os.Exit(0) // the runtime stops the sandbox with SIGTERM/SIGINT: nothing to clean up
		}
		for { // reap every child that has exited; one SIGCHLD may stand for several
			pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
