// boundedrunc runs runc with every capability the calling process cannot hold removed from the container's
// capability sets. Docker grants a privileged container every capability it knows; on a machine whose
// capability bounding set lacks one (CAP_SYS_RESOURCE here), runc then fails with "unable to apply caps:
// operation not permitted". A second Docker daemon that the kind setup starts (scripts/kind-docker.sh) names
// this program as its default runtime, so kind's privileged node containers start with every capability
// but the missing ones. On a machine whose bounding set is full, it changes nothing.
//
// It rewrites the capability sets of `create`/`run` (the bundle's config.json) and of `exec --process FILE`
// (the process's JSON), then replaces itself with the real runc (RUNC, else `runc` on PATH).
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// capabilityNames lists Linux capabilities by number (linux/capability.h).
var capabilityNames = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
	"CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE",
	"CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT",
	"CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
	"CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN",
	"CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
	"CAP_CHECKPOINT_RESTORE",
}

var capabilitySets = []string{"bounding", "effective", "inheritable", "permitted", "ambient"}

// unavailable returns the names of the known capabilities missing from a CapBnd mask of /proc/self/status.
func unavailable(status string) (map[string]bool, error) {
	for _, line := range strings.Split(status, "\n") {
		hex, found := strings.CutPrefix(line, "CapBnd:")
		if !found {
			continue
		}
		mask, err := strconv.ParseUint(strings.TrimSpace(hex), 16, 64)
		if err != nil {
			return nil, fmt.Errorf("CapBnd %q: %w", hex, err)
		}
		missing := map[string]bool{}
		for number, name := range capabilityNames {
			if mask&(1<<uint(number)) == 0 {
				missing[name] = true
			}
		}
		return missing, nil
	}
	return nil, fmt.Errorf("no CapBnd line in /proc/self/status")
}

// withoutCapabilities drops the missing capabilities from every set of a capabilities object.
func withoutCapabilities(capabilities map[string]any, missing map[string]bool) {
	for _, set := range capabilitySets {
		names, ok := capabilities[set].([]any)
		if !ok {
			continue
		}
		kept := []any{}
		for _, name := range names {
			if text, isText := name.(string); !isText || !missing[text] {
				kept = append(kept, name)
			}
		}
		capabilities[set] = kept
	}
}

// rewrite edits the JSON file in place; inProcess says whether the capabilities sit under "process" (a
// bundle's config.json) or at the top (an exec's process file).
func rewrite(path string, inProcess bool, missing map[string]bool) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	decoder := json.NewDecoder(bytes.NewReader(data))
	decoder.UseNumber() // uids, limits and sizes stay exactly as written
	var document map[string]any
	if err := decoder.Decode(&document); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	holder := document
	if inProcess {
		process, ok := document["process"].(map[string]any)
		if !ok {
			return nil
		}
		holder = process
	}
	capabilities, ok := holder["capabilities"].(map[string]any)
	if !ok {
		return nil
	}
	withoutCapabilities(capabilities, missing)
	var edited bytes.Buffer
	encoder := json.NewEncoder(&edited)
	encoder.SetEscapeHTML(false) // arguments and paths stay as written
	if err := encoder.Encode(document); err != nil {
		return err
	}
	info, err := os.Stat(path)
	if err != nil {
		return err
	}
	return os.WriteFile(path, bytes.TrimSuffix(edited.Bytes(), []byte("\n")), info.Mode().Perm())
}

// specFiles finds the JSON files a runc command line hands to runc: the bundle's config.json for create and
// run (--bundle/-b, else the working directory), the --process/-p file for exec.
func specFiles(args []string) (bundleConfig, processFile string) {
	command := ""
	bundle := "."
	for index := 0; index < len(args); index++ {
		argument := args[index]
		value := func(long, short string) (string, bool) {
			for _, flag := range []string{long, short} {
				if argument == flag && index+1 < len(args) {
					index++
					return args[index], true
				}
				if rest, found := strings.CutPrefix(argument, flag+"="); found {
					return rest, true
				}
			}
			return "", false
		}
		if command == "" {
			if !strings.HasPrefix(argument, "-") {
				command = argument
			} else if !strings.Contains(argument, "=") && globalFlagTakesValue(argument) {
				index++
			}
			continue
		}
		switch command {
		case "create", "run":
			if path, found := value("--bundle", "-b"); found {
				bundle = path
			}
		case "exec":
			if path, found := value("--process", "-p"); found {
				processFile = path
			}
		}
	}
	if command == "create" || command == "run" {
		bundleConfig = filepath.Join(bundle, "config.json")
	}
	return bundleConfig, processFile
}

// globalFlagTakesValue: runc's global flags given as "--flag value" (the others are booleans).
func globalFlagTakesValue(flag string) bool {
	switch flag {
	case "--root", "--log", "--log-format", "--criu", "--rootless":
		return true
	}
	return false
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "boundedrunc:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return err
	}
	missing, err := unavailable(string(status))
	if err != nil {
		return err
	}
	bundleConfig, processFile := specFiles(args)
	if len(missing) > 0 {
		if bundleConfig != "" {
			if err := rewrite(bundleConfig, true, missing); err != nil {
				return err
			}
		}
		if processFile != "" {
			if err := rewrite(processFile, false, missing); err != nil {
				return err
			}
		}
	}
	runc := os.Getenv("RUNC")
	if runc == "" {
		if runc, err = exec.LookPath("runc"); err != nil {
			return err
		}
	}
	return syscall.Exec(runc, append([]string{runc}, args...), os.Environ())
}
