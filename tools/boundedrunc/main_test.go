package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestUnavailableReadsTheBoundingSet(t *testing.T) {
	// every capability of 0..40 but CAP_SYS_RESOURCE (24)
	missing, err := unavailable("Name:\tx\nCapBnd:\t000001fffeffffff\n")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(missing, map[string]bool{"CAP_SYS_RESOURCE": true}) {
		t.Fatalf("missing = %v", missing)
	}
	full, _ := unavailable("CapBnd:\t000001ffffffffff\n")
	if len(full) != 0 {
		t.Fatalf("a full set lacks %v", full)
	}
	if _, err := unavailable("Name:\tx\n"); err == nil {
		t.Fatal("no CapBnd line accepted")
	}
}

func TestSpecFilesFindsBundleAndProcess(t *testing.T) {
	cases := []struct {
		args            []string
		config, process string
	}{
		{[]string{"--root", "/r", "--log", "/l", "create", "--bundle", "/b", "--pid-file", "/p", "id"}, "/b/config.json", ""},
		{[]string{"--systemd-cgroup", "run", "-b=/x", "id"}, "/x/config.json", ""},
		{[]string{"create", "id"}, "config.json", ""},
		{[]string{"--root=/r", "exec", "--process", "/p.json", "-d", "id"}, "", "/p.json"},
		{[]string{"start", "id"}, "", ""},
		{[]string{"--log-format", "json", "delete", "--force", "id"}, "", ""},
	}
	for _, c := range cases {
		config, process := specFiles(c.args)
		if config != c.config || process != c.process {
			t.Errorf("%v: got %q %q, want %q %q", c.args, config, process, c.config, c.process)
		}
	}
}

func TestRewriteDropsOnlyTheMissingAndKeepsTheRest(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.json")
	original := `{"ociVersion":"1.0.2","process":{"user":{"uid":4294967294},"capabilities":{` +
		`"bounding":["CAP_SYS_ADMIN","CAP_SYS_RESOURCE"],"effective":["CAP_SYS_RESOURCE","CAP_NET_ADMIN"],` +
		`"permitted":["CAP_SYS_RESOURCE"]}},"linux":{"resources":{"memory":{"limit":9007199254740993}}}}`
	if err := os.WriteFile(path, []byte(original), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := rewrite(path, true, map[string]bool{"CAP_SYS_RESOURCE": true}); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	var got map[string]any
	decoder := json.NewDecoder(bytesReader(data))
	decoder.UseNumber()
	if err := decoder.Decode(&got); err != nil {
		t.Fatal(err)
	}
	capabilities := got["process"].(map[string]any)["capabilities"].(map[string]any)
	if !reflect.DeepEqual(capabilities["bounding"], []any{"CAP_SYS_ADMIN"}) ||
		!reflect.DeepEqual(capabilities["effective"], []any{"CAP_NET_ADMIN"}) ||
		!reflect.DeepEqual(capabilities["permitted"], []any{}) {
		t.Fatalf("capabilities = %v", capabilities)
	}
	limit := got["linux"].(map[string]any)["resources"].(map[string]any)["memory"].(map[string]any)["limit"]
	if limit != json.Number("9007199254740993") {
		t.Fatalf("a large number changed: %v", limit)
	}
	if uid := got["process"].(map[string]any)["user"].(map[string]any)["uid"]; uid != json.Number("4294967294") {
		t.Fatalf("uid changed: %v", uid)
	}
	info, _ := os.Stat(path)
	if info.Mode().Perm() != 0o600 {
		t.Fatalf("mode changed: %v", info.Mode())
	}
}

func TestRewriteOfAnExecProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "process.json")
	_ = os.WriteFile(path, []byte(`{"args":["sh"],"capabilities":{"bounding":["CAP_SYS_RESOURCE","CAP_KILL"]}}`), 0o644)
	if err := rewrite(path, false, map[string]bool{"CAP_SYS_RESOURCE": true}); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	if string(data) != `{"args":["sh"],"capabilities":{"bounding":["CAP_KILL"]}}` {
		t.Fatalf("got %s", data)
	}
}

func bytesReader(data []byte) *bytes.Reader { return bytes.NewReader(data) }
