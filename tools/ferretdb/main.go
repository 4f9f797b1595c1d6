// Command ferretdb-local runs FerretDB (a MongoDB wire-protocol server) embedded, for TaskPlatform's
// migration tests and benchmarks: there is no mongod package on Debian, and FerretDB's own command
// refuses to start when built outside its repository (it wants a generated version file).
//
//	ferretdb-local -listen 127.0.0.1:27017 -sqlite-dir /tmp/data
//	ferretdb-local -listen 127.0.0.1:27017 -postgresql-url postgres://user@127.0.0.1:5432/ferretdb
//
// It stops on SIGINT/SIGTERM.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:27017", "TCP address to listen on")
	sqliteDir := flag.String("sqlite-dir", "", "directory for the SQLite backend (one file per database)")
	postgresqlURL := flag.String("postgresql-url", "", "PostgreSQL URL for the PostgreSQL backend")
	logLevel := flag.String("log-level", "warn", "debug, info, warn or error")
	flag.Parse()

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fail(err)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	config := &ferretdb.Config{Listener: ferretdb.ListenerConfig{TCP: *listen}, Logger: logger}
	switch {
	case *sqliteDir != "" && *postgresqlURL != "":
		fail(fmt.Errorf("give either -sqlite-dir or -postgresql-url, not both"))
	case *postgresqlURL != "":
		config.Handler = "postgresql"
		config.PostgreSQLURL = *postgresqlURL
	default:
		dir := *sqliteDir
		if dir == "" {
			dir = "data"
		}
		abs, err := filepath.Abs(dir)
		if err != nil {
			fail(err)
		}
		if err := os.MkdirAll(abs, 0o700); err != nil {
			fail(err)
		}
		config.Handler = "sqlite"
		config.SQLiteURL = "file:" + abs + "/"
	}

	server, err := ferretdb.New(config)
	if err != nil {
		fail(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger.Info("listening", "address", *listen, "handler", config.Handler)
	if err := server.Run(ctx); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "ferretdb-local:", err)
	os.Exit(1)
}
