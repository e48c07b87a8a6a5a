// Command payfuse is the PayFuse console: one binary that serves the web
// console and scripts its administration.
//
//	payfuse [global flags] [serve] [--addr 127.0.0.1:8080] [--demo]
//	payfuse [global flags] migrate
//	payfuse [global flags] user create --username NAME --role ROLE [--merchant CODE …] --password-stdin
//
// Run `payfuse --help` or `payfuse CMD --help` for everything.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
	_ "time/tzdata" // merchant time zones work on machines without zoneinfo

	"payfuse/channels/testkeys"
	"payfuse/models"
	"payfuse/views"
	"payfuse/web"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// globals are the flags every command takes; each has an environment variable.
type globals struct {
	db            string
	masterKeyFile string
	secureCookies bool
	logFormat     string
}

func envOr(name, def string) string {
	if v, ok := os.LookupEnv(name); ok && v != "" {
		return v
	}
	return def
}

func envBool(name string) bool {
	switch strings.ToLower(os.Getenv(name)) {
	case "1", "true", "yes", "on":
		return true
	}
	return false
}

func (g *globals) register(fs *flag.FlagSet) {
	fs.StringVar(&g.db, "db", g.db, "database: sqlite:PATH or mysql://USER[:PASS]@HOST:PORT/DBNAME[?params] (env PAYFUSE_DB)")
	fs.StringVar(&g.masterKeyFile, "master-key-file", g.masterKeyFile, "file with the 32-byte key that encrypts secrets and session cookies (env PAYFUSE_MASTER_KEY_FILE;\nwith SQLite and none given, one is generated next to the database file)")
	fs.BoolVar(&g.secureCookies, "secure-cookies", g.secureCookies, "mark cookies Secure and use the __Host- prefix; turn on behind TLS (env PAYFUSE_SECURE_COOKIES=1)")
	fs.StringVar(&g.logFormat, "log-format", g.logFormat, "log format: text or json (env PAYFUSE_LOG_FORMAT)")
}

const usage = `PayFuse — one console for a merchant's payment channels.

Usage:
  payfuse [global flags] [command] [flags]

Commands:
  serve          run the web console (the default command)
  migrate        apply database migrations and exit
  user create    create a user (password read from standard input)
  user list      list users
  user set-password  set a user's password (read from standard input) and unlock the account
  user reset-2fa     remove a user's two-factor sign-in (the way back for an admin who lost the phone and the codes)
  merchant create    create a merchant
  merchant list      list merchants
  channel configure  create or update a merchant's account at a channel (secrets only from files)
  channel list       list channel accounts (never secret values)
  keys rotate        re-wrap every data key under a new master key
  backup --out FILE  copy a live SQLite database to FILE (MySQL: see docs/OPERATIONS.md)
  import             import a channel statement file into the ledger
  export transactions  export ledger transactions as CSV or XLSX
  demo-data          generate demo payment history through the ingest path
  reconcile          reconcile one channel account's business date (statement vs other sources)
  report daily|monthly  print a merchant's settlement report (CSV or JSON)
  kpi                print each channel account's KPIs, weights and score, and the fused score
  flow list          list flows with their schedule, next run and last result
  flow run NAME      run a flow now and wait for its result
  load               drive a running console with a realistic mix of pages and notifications; print latencies

Global flags (also accepted after the command):
`

// run is main without the process: it returns the exit status.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	g := &globals{
		db:            envOr("PAYFUSE_DB", "sqlite:payfuse.db"),
		masterKeyFile: envOr("PAYFUSE_MASTER_KEY_FILE", ""),
		secureCookies: envBool("PAYFUSE_SECURE_COOKIES"),
		logFormat:     envOr("PAYFUSE_LOG_FORMAT", "text"),
	}
	root := flag.NewFlagSet("payfuse", flag.ContinueOnError)
	root.SetOutput(stderr)
	g.register(root)
	root.Usage = func() {
		fmt.Fprint(stderr, usage)
		root.PrintDefaults()
		fmt.Fprintln(stderr, "\nRun 'payfuse CMD --help' for a command's own flags.")
	}
	if err := root.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	rest := root.Args()
	cmd := "serve"
	if len(rest) > 0 {
		cmd, rest = rest[0], rest[1:]
	}
	var err error
	switch cmd {
	case "serve":
		err = cmdServe(ctx, g, rest, stdout, stderr)
	case "migrate":
		err = cmdMigrate(g, rest, stdout, stderr)
	case "user":
		err = cmdUser(g, rest, stdin, stdout, stderr)
	case "merchant":
		err = cmdMerchant(g, rest, stdout, stderr)
	case "channel":
		err = cmdChannel(g, rest, stdout, stderr)
	case "keys":
		err = cmdKeys(g, rest, stdout, stderr)
	case "backup":
		err = cmdBackup(g, rest, stdout, stderr)
	case "import":
		err = cmdImport(g, rest, stdout, stderr)
	case "export":
		err = cmdExport(g, rest, stdout, stderr)
	case "demo-data":
		err = cmdDemoData(g, rest, stdout, stderr)
	case "reconcile":
		err = cmdReconcile(g, rest, stdout, stderr)
	case "report":
		err = cmdReport(g, rest, stdout, stderr)
	case "kpi":
		err = cmdKPI(g, rest, stdout, stderr)
	case "flow":
		err = cmdFlow(ctx, g, rest, stdout, stderr)
	case "load":
		err = cmdLoad(ctx, g, rest, stdout, stderr)
	case "help":
		root.Usage()
		return 0
	default:
		fmt.Fprintf(stderr, "payfuse: unknown command %q (run 'payfuse --help')\n", cmd)
		return 2
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "payfuse: "+oneLine(err))
		return 1
	}
	return 0
}

// oneLine makes an error fit the promise of a one-line reason.
func oneLine(err error) string {
	var fe models.FieldErrors
	if errors.As(err, &fe) {
		parts := []string{}
		for field, key := range fe {
			parts = append(parts, field+": "+views.Translate(views.LangEN, key))
		}
		sort.Strings(parts)
		return strings.Join(parts, "; ")
	}
	if key := err.Error(); strings.HasPrefix(key, "err.") {
		return views.Translate(views.LangEN, key)
	}
	return strings.ReplaceAll(err.Error(), "\n", " ")
}

func newFlags(name, synopsis string, g *globals, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: %s\n\nFlags:\n", synopsis)
		fs.PrintDefaults()
	}
	g.register(fs)
	return fs
}

func (g *globals) logger(stderr io.Writer) (*slog.Logger, error) {
	switch g.logFormat {
	case "text":
		return slog.New(slog.NewTextHandler(stderr, nil)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(stderr, nil)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", g.logFormat)
}

// open connects to the database and applies pending migrations.
func (g *globals) open() (*models.Store, models.DSN, error) {
	dsn, err := models.ParseDSN(g.db)
	if err != nil {
		return nil, dsn, err
	}
	db, err := models.Open(dsn)
	if err != nil {
		return nil, dsn, err
	}
	if err := models.Migrate(db, dsn.Dialect); err != nil {
		return nil, dsn, err
	}
	return models.NewStore(db, dsn.Dialect), dsn, nil
}

// masterKey loads the key-encrypting key; with SQLite and no key given it
// creates one beside the database file (mode 0600) and warns.
func (g *globals) masterKey(dsn models.DSN, log *slog.Logger) ([]byte, error) {
	if g.masterKeyFile != "" {
		return models.LoadMasterKey(g.masterKeyFile)
	}
	if dsn.Dialect != models.SQLite {
		return nil, errors.New("with MySQL a master key is required: give --master-key-file or PAYFUSE_MASTER_KEY_FILE (32 random bytes, e.g. `head -c 32 /dev/urandom > payfuse.key`)")
	}
	path := dsn.Path + ".key"
	if _, err := os.Stat(path); err == nil {
		log.Warn("using the master key generated beside the database; keep a copy apart from the database backups", "file", path)
		return models.LoadMasterKey(path)
	}
	key, err := models.CreateMasterKey(path)
	if err != nil {
		return nil, err
	}
	log.Warn("no --master-key-file given: generated a new master key beside the database; back it up separately — without it, stored secrets cannot be read", "file", path)
	return key, nil
}

func cmdServe(ctx context.Context, g *globals, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("serve", "payfuse serve [--addr 127.0.0.1:8080] [--demo] [--trusted-proxies CIDR,…]", g, stderr)
	addr := fs.String("addr", envOr("PAYFUSE_ADDR", "127.0.0.1:8080"), "listen address (env PAYFUSE_ADDR)")
	demo := fs.Bool("demo", false, "create demo users for each role and print their passwords")
	proxies := fs.String("trusted-proxies", envOr("PAYFUSE_TRUSTED_PROXIES", ""), "comma-separated proxy addresses/CIDRs whose X-Forwarded-For is trusted (env PAYFUSE_TRUSTED_PROXIES)")
	metricsAllow := fs.String("metrics-allow", envOr("PAYFUSE_METRICS_ALLOW", "127.0.0.0/8,::1"), "comma-separated addresses/CIDRs that may read /metrics without the token, or none (env PAYFUSE_METRICS_ALLOW)")
	metricsToken := fs.String("metrics-token", "", "bearer token (16+ characters) that opens /metrics from any address; prefer env PAYFUSE_METRICS_TOKEN, which other users cannot see")
	pprofOn := fs.Bool("pprof", false, "serve the Go profiler at /debug/pprof/ to signed-in admins")
	flowSet := flowFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	flowCfg, err := flowSet.resolve()
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("serve: unexpected argument %q", fs.Arg(0))
	}
	log, err := g.logger(stderr)
	if err != nil {
		return err
	}
	store, dsn, err := g.open()
	if err != nil {
		return err
	}
	defer store.Close()
	key, err := g.masterKey(dsn, log)
	if err != nil {
		return err
	}
	if err := bootstrapAdmin(store, stdout, log); err != nil {
		return err
	}
	store.Vault, err = models.NewVault(key)
	if err != nil {
		return err
	}
	if n, err := store.ForeignDataKeys(); err == nil && n > 0 {
		log.Error("the master key does not match the stored credentials: they were sealed under another key and cannot be used until PayFuse runs with that key (pages still work)",
			"configured_key_id", store.Vault.KeyID(), "sealed_credentials", n)
	}
	if *demo {
		if err := createDemoData(store, stdout, log); errors.Is(err, models.ErrMasterKeyMismatch) {
			log.Error("demo channel accounts not created", "err", err)
		} else if err != nil {
			return err
		}
		if err := createDemoUsers(store, stdout); err != nil {
			return err
		}
		if err := printDemoToken(store, stdout, *addr, true); err != nil {
			log.Error("demo API token not created", "err", err)
		}
		if err := generateServeDemoHistory(store, stdout, log); err != nil {
			return err
		}
	}
	cfg := web.Config{Addr: *addr, SecureCookies: g.secureCookies, MasterKey: key, Logger: log, Flows: flowCfg,
		MetricsAllow: strings.Split(*metricsAllow, ","), MetricsToken: *metricsToken, Pprof: *pprofOn}
	if cfg.MetricsToken == "" {
		cfg.MetricsToken = os.Getenv("PAYFUSE_METRICS_TOKEN")
	}
	if *proxies != "" {
		for _, p := range strings.Split(*proxies, ",") {
			if p = strings.TrimSpace(p); p != "" {
				cfg.TrustedProxies = append(cfg.TrustedProxies, p)
			}
		}
	}
	srv, err := web.New(cfg, store)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	log.Info("PayFuse console listening", "url", "http://"+*addr, "db", dsn.String())
	return srv.Listen(ctx)
}

// bootstrapAdmin creates the first administrator on an empty database and
// prints its one-time password; it must be changed at first sign-in.
func bootstrapAdmin(store *models.Store, stdout io.Writer, log *slog.Logger) error {
	n, err := store.CountUsers()
	if err != nil {
		return err
	}
	if n > 0 {
		return nil
	}
	pw := models.RandomPassword(20)
	_, err = store.CreateUser(models.SystemActor, models.NewUser{Username: "admin", Password: pw, Role: string(models.RoleAdmin), MustChangePassword: true})
	var fe models.FieldErrors
	if errors.As(err, &fe) && fe["username"] == "err.username_taken" {
		return nil // another process created it at the same moment
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\n  First start: created the administrator account.\n    username: admin\n    password: %s\n  This password is shown only now; you must change it at first sign-in.\n\n", pw)
	log.Info("initial administrator created (password printed once on standard output)")
	return nil
}

// createDemoUsers makes (or refreshes) one demo user per role with fresh
// passwords. Their merchant scope names the demo merchants.
func createDemoUsers(store *models.Store, stdout io.Writer) error {
	fmt.Fprintln(stdout, "\n  Demo users (passwords are new on every --demo start):")
	for _, d := range []struct {
		name string
		role models.Role
	}{{"demo-admin", models.RoleAdmin}, {"demo-operator", models.RoleOperator}, {"demo-finance", models.RoleFinance}} {
		pw := models.RandomPassword(16)
		u, err := store.GetUserByUsername(d.name)
		switch {
		case errors.Is(err, models.ErrNotFound):
			_, err = store.CreateUser(models.SystemActor, models.NewUser{Username: d.name, Password: pw, Role: string(d.role), Merchants: models.DemoMerchants})
		case err == nil:
			err = store.SetPassword(models.SystemActor, u.ID, pw, false)
		}
		if err != nil {
			return fmt.Errorf("demo user %s: %w", d.name, err)
		}
		fmt.Fprintf(stdout, "    %-14s %-9s %s\n", d.name, d.role, pw)
	}
	fmt.Fprintln(stdout)
	return nil
}

func cmdMigrate(g *globals, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("migrate", "payfuse migrate", g, stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	store, dsn, err := g.open()
	if err != nil {
		return err
	}
	defer store.Close()
	v, err := store.SchemaVersion()
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s is at schema version %d\n", dsn, v)
	return nil
}

// stringList is a repeatable flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func readPassword(stdin io.Reader) (string, error) {
	line, err := bufio.NewReader(io.LimitReader(stdin, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("reading the password from standard input: %w", err)
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("no password on standard input (pipe it in: echo \"$PW\" | payfuse user create … --password-stdin)")
	}
	return line, nil
}

func cmdUser(g *globals, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, "Usage:\n  payfuse user create --username NAME --role admin|operator|finance [--merchant CODE …] --password-stdin [--must-change-password] [--json]\n  payfuse user list [--json]\n  payfuse user set-password --username NAME --password-stdin\n  payfuse user reset-2fa --username NAME --reason TEXT\n")
		if len(args) == 0 {
			return errors.New("user: name a subcommand: create, list or set-password")
		}
		return flag.ErrHelp
	}
	sub, args := args[0], args[1:]
	switch sub {
	case "create":
		fs := newFlags("user create", "payfuse user create --username NAME --role admin|operator|finance [--merchant CODE …] --password-stdin", g, stderr)
		username := fs.String("username", "", "the new user's name (3–64 of a-z 0-9 . _ -)")
		role := fs.String("role", "", "admin, operator or finance")
		var merchants stringList
		fs.Var(&merchants, "merchant", "merchant code in the user's scope (repeat for several; ignored for admins)")
		pwStdin := fs.Bool("password-stdin", false, "read the password from the first line of standard input (required; passwords never go on the command line)")
		mustChange := fs.Bool("must-change-password", false, "make the user choose a new password at first sign-in")
		asJSON := fs.Bool("json", false, "print the result as JSON")
		if err := fs.Parse(args); err != nil {
			return err
		}
		if fs.NArg() > 0 {
			return fmt.Errorf("user create: unexpected argument %q (passwords are read from standard input with --password-stdin)", fs.Arg(0))
		}
		if *username == "" || *role == "" {
			return errors.New("user create: --username and --role are required")
		}
		if !*pwStdin {
			return errors.New("user create: --password-stdin is required; pipe the password in on standard input")
		}
		pw, err := readPassword(stdin)
		if err != nil {
			return err
		}
		store, _, err := g.open()
		if err != nil {
			return err
		}
		defer store.Close()
		u, err := store.CreateUser(models.CLIActor(), models.NewUser{Username: *username, Password: pw, Role: *role, Merchants: merchants, MustChangePassword: *mustChange})
		if err != nil {
			return err
		}
		if *asJSON {
			return json.NewEncoder(stdout).Encode(map[string]any{"id": u.ID, "username": u.Username, "role": u.Role, "merchants": nonNil(u.Merchants)})
		}
		fmt.Fprintf(stdout, "created user %s (%s, id %d)\n", u.Username, u.Role, u.ID)
		return nil
	case "list":
		fs := newFlags("user list", "payfuse user list [--json]", g, stderr)
		asJSON := fs.Bool("json", false, "print JSON lines")
		if err := fs.Parse(args); err != nil {
			return err
		}
		store, _, err := g.open()
		if err != nil {
			return err
		}
		defer store.Close()
		for page := 1; ; page++ {
			users, total, err := store.ListUsers(models.UserFilter{Page: page, Size: 200})
			if err != nil {
				return err
			}
			for _, u := range users {
				if *asJSON {
					json.NewEncoder(stdout).Encode(map[string]any{"id": u.ID, "username": u.Username, "role": u.Role, "merchants": nonNil(u.Merchants), "disabled": u.Disabled})
				} else {
					fmt.Fprintf(stdout, "%-6d %-24s %-9s disabled=%-5v %s\n", u.ID, u.Username, u.Role, u.Disabled, strings.Join(u.Merchants, ","))
				}
			}
			if int64(page*200) >= total {
				return nil
			}
		}
	case "set-password":
		fs := newFlags("user set-password", "payfuse user set-password --username NAME --password-stdin", g, stderr)
		username := fs.String("username", "", "the user")
		pwStdin := fs.Bool("password-stdin", false, "read the password from standard input (required)")
		if err := fs.Parse(args); err != nil {
			return err
		}
		if *username == "" || !*pwStdin {
			return errors.New("user set-password: --username and --password-stdin are required")
		}
		pw, err := readPassword(stdin)
		if err != nil {
			return err
		}
		store, _, err := g.open()
		if err != nil {
			return err
		}
		defer store.Close()
		u, err := store.GetUserByUsername(*username)
		if errors.Is(err, models.ErrNotFound) {
			return fmt.Errorf("user set-password: no user %q", *username)
		}
		if err != nil {
			return err
		}
		if err := store.SetPassword(models.CLIActor(), u.ID, pw, false); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "password of %s set; the account is unlocked and its sessions ended\n", u.Username)
		return nil
	case "reset-2fa":
		fs := newFlags("user reset-2fa", "payfuse user reset-2fa --username NAME --reason TEXT", g, stderr)
		username := fs.String("username", "", "the user")
		reason := fs.String("reason", "", "why (required; kept in the audit log)")
		if err := fs.Parse(args); err != nil {
			return err
		}
		if *username == "" || strings.TrimSpace(*reason) == "" {
			return errors.New("user reset-2fa: --username and --reason are required")
		}
		store, _, err := g.open()
		if err != nil {
			return err
		}
		defer store.Close()
		u, err := store.GetUserByUsername(*username)
		if errors.Is(err, models.ErrNotFound) {
			return fmt.Errorf("user reset-2fa: no user %q", *username)
		}
		if err != nil {
			return err
		}
		err = store.ResetTwoFactor(models.CLIActor(), u.ID, *reason)
		if errors.Is(err, models.ErrTwoFactorNotEnabled) {
			return fmt.Errorf("user reset-2fa: %s has no two-factor sign-in to reset", u.Username)
		}
		if err != nil {
			return fmt.Errorf("user reset-2fa: %w", err)
		}
		fmt.Fprintf(stdout, "two-factor sign-in of %s reset; its sessions ended (an admin enrols again at the next sign-in)\n", u.Username)
		return nil
	}
	return fmt.Errorf("user: unknown subcommand %q (want create, list or set-password)", sub)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// openWithVault opens the store with the master key, for commands that touch credentials.
func (g *globals) openWithVault(stderr io.Writer) (*models.Store, error) {
	log, err := g.logger(stderr)
	if err != nil {
		return nil, err
	}
	store, dsn, err := g.open()
	if err != nil {
		return nil, err
	}
	key, err := g.masterKey(dsn, log)
	if err != nil {
		store.Close()
		return nil, err
	}
	if store.Vault, err = models.NewVault(key); err != nil {
		store.Close()
		return nil, err
	}
	return store, nil
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

func merchantJSON(m *models.Merchant) map[string]any {
	return map[string]any{"id": m.ID, "code": m.Code, "name": m.Name, "contact": m.Contact, "timezone": m.Timezone, "currency": m.Currency, "status": m.Status}
}

func cmdMerchant(g *globals, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, "Usage:\n  payfuse merchant create --code CODE --name NAME [--contact TEXT] [--timezone TZ] [--currency CNY] [--json]\n  payfuse merchant list [--json]\n")
		if len(args) == 0 {
			return errors.New("merchant: name a subcommand: create or list")
		}
		return flag.ErrHelp
	}
	sub, args := args[0], args[1:]
	switch sub {
	case "create":
		fs := newFlags("merchant create", "payfuse merchant create --code CODE --name NAME [--timezone TZ] [--currency CNY] [--json]", g, stderr)
		code := fs.String("code", "", "permanent merchant code, 2–32 of A-Z 0-9 _ -")
		name := fs.String("name", "", "the merchant's name")
		contact := fs.String("contact", "", "who to call about its payments")
		tz := fs.String("timezone", models.DefaultTimezone, "IANA time zone its business days are counted in")
		currency := fs.String("currency", "CNY", "settlement currency (ISO 4217)")
		asJSON := fs.Bool("json", false, "print the merchant as JSON")
		if err := fs.Parse(args); err != nil {
			return err
		}
		if fs.NArg() > 0 {
			return fmt.Errorf("merchant create: unexpected argument %q", fs.Arg(0))
		}
		store, _, err := g.open()
		if err != nil {
			return err
		}
		defer store.Close()
		m, err := store.CreateMerchant(models.CLIActor(), models.MerchantInput{Code: *code, Name: *name, Contact: *contact, Timezone: *tz, Currency: *currency})
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(stdout, merchantJSON(m))
		}
		fmt.Fprintf(stdout, "created merchant %s (%s, id %d)\n", m.Code, m.Name, m.ID)
		return nil
	case "list":
		fs := newFlags("merchant list", "payfuse merchant list [--json]", g, stderr)
		asJSON := fs.Bool("json", false, "print JSON lines")
		if err := fs.Parse(args); err != nil {
			return err
		}
		store, _, err := g.open()
		if err != nil {
			return err
		}
		defer store.Close()
		for page := 1; ; page++ {
			list, total, err := store.ListMerchants(models.Scope{All: true}, models.MerchantFilter{Page: page, Size: 500})
			if err != nil {
				return err
			}
			for i := range list {
				if *asJSON {
					printJSON(stdout, merchantJSON(&list[i]))
				} else {
					m := list[i]
					fmt.Fprintf(stdout, "%-6d %-16s %-10s %-16s %s %s\n", m.ID, m.Code, m.Status, m.Timezone, m.Currency, m.Name)
				}
			}
			if int64(page*500) >= total {
				return nil
			}
		}
	}
	return fmt.Errorf("merchant: unknown subcommand %q (want create or list)", sub)
}

// pairList is a repeatable FIELD=VALUE flag.
type pairList []string

func (p *pairList) String() string     { return strings.Join(*p, ",") }
func (p *pairList) Set(v string) error { *p = append(*p, v); return nil }

func splitPair(flagName, v string) (string, string, error) {
	k, val, ok := strings.Cut(v, "=")
	if !ok || strings.TrimSpace(k) == "" {
		return "", "", fmt.Errorf("--%s %q: want FIELD=VALUE", flagName, v)
	}
	return strings.TrimSpace(k), val, nil
}

func accountJSON(a *models.ChannelAccount, store *models.Store, created bool) map[string]any {
	out := map[string]any{
		"id": a.ID, "merchant": a.MerchantCode, "channel": a.Channel, "name": a.DisplayName, "notify_path": a.NotifyPath(),
		"methods": nonNil(a.MethodList()), "fee_rate_bp": a.FeeRateBP, "enabled": a.Enabled, "settings": a.SettingsMap(),
		"check_ok": a.CheckOK, "cert_not_after": a.CertNotAfter,
	}
	if created {
		out["created"] = true
	}
	if secrets, err := store.SecretStatuses(a.ID); err == nil {
		list := []map[string]any{}
		for _, s := range secrets {
			list = append(list, map[string]any{"field": s.Field, "fingerprint": s.Fingerprint, "updated_at": s.UpdatedAt, "updated_by": s.UpdatedBy})
		}
		out["secrets"] = list
	}
	return out
}

func cmdChannel(g *globals, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, "Usage:\n  payfuse channel configure --merchant CODE --channel wechat|alipay|unionpay [--name NAME] [--set FIELD=VALUE …] [--file FIELD=PATH …] [--json]\n  payfuse channel list [--merchant CODE] [--json]\n\nFields per channel:\n")
		for _, spec := range models.ChannelSpecs() {
			code := spec.Code
			var names []string
			for _, f := range spec.Fields {
				n := f.Name
				if f.Secret {
					n += " (secret: --file)"
				}
				names = append(names, n)
			}
			fmt.Fprintf(stderr, "  %-9s %s\n", code, strings.Join(names, ", "))
		}
		fmt.Fprint(stderr, "  all       methods=scan,quick,h5,app  fee_rate_bp=60  enabled=true|false (with --set)\n")
		if len(args) == 0 {
			return errors.New("channel: name a subcommand: configure or list")
		}
		return flag.ErrHelp
	}
	sub, args := args[0], args[1:]
	switch sub {
	case "configure":
		fs := newFlags("channel configure", "payfuse channel configure --merchant CODE --channel wechat|alipay|unionpay [--name NAME] [--set FIELD=VALUE …] [--file FIELD=PATH …] [--json]", g, stderr)
		merchant := fs.String("merchant", "", "merchant code")
		channel := fs.String("channel", "", "wechat, alipay or unionpay")
		name := fs.String("name", "", "display name; picks the account to update when the merchant has several at this channel")
		var sets, files pairList
		fs.Var(&sets, "set", "FIELD=VALUE for a non-secret field, or methods=…, fee_rate_bp=…, enabled=… (repeatable)")
		fs.Var(&files, "file", "FIELD=PATH: read the field's value from a file; the only way to give a secret (repeatable)")
		asJSON := fs.Bool("json", false, "print the account as JSON")
		if err := fs.Parse(args); err != nil {
			return err
		}
		if fs.NArg() > 0 {
			return fmt.Errorf("channel configure: unexpected argument %q", fs.Arg(0))
		}
		if *merchant == "" || *channel == "" {
			return errors.New("channel configure: --merchant and --channel are required")
		}
		spec, ok := models.LookupChannel(*channel)
		if !ok {
			return fmt.Errorf("channel configure: unknown channel %q (want wechat, alipay or unionpay)", *channel)
		}
		values := map[string][]byte{}
		var methods *string
		var fee *int
		var enabled *bool
		for _, p := range sets {
			k, v, err := splitPair("set", p)
			if err != nil {
				return err
			}
			switch k {
			case "methods":
				methods = &v
				continue
			case "fee_rate_bp":
				n, err := strconv.Atoi(strings.TrimSpace(v))
				if err != nil {
					return fmt.Errorf("--set fee_rate_bp=%q: want a whole number of basis points (60 = 0.60%%)", v)
				}
				fee = &n
				continue
			case "enabled":
				b, err := strconv.ParseBool(strings.TrimSpace(v))
				if err != nil {
					return fmt.Errorf("--set enabled=%q: want true or false", v)
				}
				enabled = &b
				continue
			}
			f, ok := spec.Field(k)
			if !ok {
				return fmt.Errorf("--set %s: %s has no such field", k, spec.Code)
			}
			if f.Secret {
				return fmt.Errorf("--set %s: %s is a secret and is never taken on the command line; give it with --file %s=PATH", k, k, k)
			}
			values[k] = []byte(v)
		}
		for _, p := range files {
			k, path, err := splitPair("file", p)
			if err != nil {
				return err
			}
			if _, ok := spec.Field(k); !ok {
				return fmt.Errorf("--file %s: %s has no such field", k, spec.Code)
			}
			b, err := readLimited(path, 256<<10)
			if err != nil {
				return fmt.Errorf("--file %s: %w", k, err)
			}
			values[k] = b
		}
		store, err := g.openWithVault(stderr)
		if err != nil {
			return err
		}
		defer store.Close()
		m, err := store.GetMerchantByCode(models.Scope{All: true}, *merchant)
		if errors.Is(err, models.ErrNotFound) {
			return fmt.Errorf("channel configure: no merchant %q", *merchant)
		}
		if err != nil {
			return err
		}
		in := models.AccountInput{MerchantID: m.ID, Channel: spec.Code, DisplayName: *name, Values: values,
			Methods: spec.Methods, FeeRateBP: 60, Enabled: true}
		var id uint64
		existing, err := store.FindAccount(m.ID, spec.Code, *name)
		switch {
		case err == nil:
			id = existing.ID
			in.DisplayName, in.Methods, in.FeeRateBP, in.Enabled = existing.DisplayName, existing.MethodList(), existing.FeeRateBP, existing.Enabled
		case errors.Is(err, models.ErrNotFound):
		default:
			return err
		}
		if methods != nil {
			in.Methods = []string{*methods}
		}
		if fee != nil {
			in.FeeRateBP = *fee
		}
		if enabled != nil {
			in.Enabled = *enabled
		}
		acct, _, err := store.SaveAccount(models.CLIActor(), id, in)
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(stdout, accountJSON(acct, store, id == 0))
		}
		verb := "updated"
		if id == 0 {
			verb = "created"
		}
		fmt.Fprintf(stdout, "%s %s account %q for %s (id %d); notifications: %s\n", verb, spec.Code, acct.DisplayName, m.Code, acct.ID, acct.NotifyPath())
		return nil
	case "list":
		fs := newFlags("channel list", "payfuse channel list [--merchant CODE] [--json]", g, stderr)
		merchant := fs.String("merchant", "", "only this merchant's accounts")
		asJSON := fs.Bool("json", false, "print JSON lines")
		if err := fs.Parse(args); err != nil {
			return err
		}
		store, _, err := g.open()
		if err != nil {
			return err
		}
		defer store.Close()
		f := models.AccountFilter{}
		if *merchant != "" {
			m, err := store.GetMerchantByCode(models.Scope{All: true}, *merchant)
			if err != nil {
				return fmt.Errorf("channel list: no merchant %q", *merchant)
			}
			f.MerchantID = m.ID
		}
		list, err := store.ListAccounts(models.Scope{All: true}, f)
		if err != nil {
			return err
		}
		for i := range list {
			a := &list[i]
			if *asJSON {
				printJSON(stdout, accountJSON(a, store, false))
				continue
			}
			expiry := "-"
			if a.CertNotAfter != nil {
				expiry = a.CertNotAfter.Format("2006-01-02")
			}
			fmt.Fprintf(stdout, "%-6d %-16s %-9s %-30q check_ok=%-5v cert_until=%s %s\n", a.ID, a.MerchantCode, a.Channel, a.DisplayName, a.CheckOK, expiry, a.NotifyPath())
		}
		return nil
	}
	return fmt.Errorf("channel: unknown subcommand %q (want configure or list)", sub)
}

func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d KiB", path, limit>>10)
	}
	return b, nil
}

func cmdKeys(g *globals, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "rotate" {
		fmt.Fprint(stderr, "Usage:\n  payfuse keys rotate --new-master-key-file FILE   (the current key comes from --master-key-file)\n")
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			return flag.ErrHelp
		}
		return errors.New("keys: the only subcommand is rotate")
	}
	fs := newFlags("keys rotate", "payfuse keys rotate --new-master-key-file FILE", g, stderr)
	newFile := fs.String("new-master-key-file", "", "file holding the new 32-byte master key")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *newFile == "" {
		return errors.New("keys rotate: --new-master-key-file is required")
	}
	nextKey, err := models.LoadMasterKey(*newFile)
	if err != nil {
		return err
	}
	next, err := models.NewVault(nextKey)
	if err != nil {
		return err
	}
	store, err := g.openWithVault(stderr)
	if err != nil {
		return err
	}
	defer store.Close()
	rewrapped, skipped, err := store.RotateMasterKey(models.CLIActor(), store.Vault, next, 0)
	if err != nil {
		return fmt.Errorf("keys rotate: nothing changed: %w", err)
	}
	fmt.Fprintf(stdout, "re-wrapped %d data key(s) under master key %s (%d already were); from now on start PayFuse with --master-key-file %s — the old key no longer opens the credentials, and everyone signs in again\n",
		rewrapped, next.KeyID(), skipped, *newFile)
	return nil
}

// createDemoData makes three demo merchants, each with WeChat Pay, Alipay and
// UnionPay accounts holding freshly generated test keys and certificates.
func createDemoData(store *models.Store, stdout io.Writer, log *slog.Logger) error {
	names := map[string]string{"SHOP_SH": "上海旗舰店 Shanghai Flagship", "SHOP_BJ": "北京三里屯店 Beijing Sanlitun", "SHOP_GZ": "广州天河店 Guangzhou Tianhe"}
	type missing struct {
		merchant *models.Merchant
		channel  string
	}
	var todo []missing
	for _, code := range models.DemoMerchants {
		m, err := store.GetMerchantByCode(models.Scope{All: true}, code)
		if errors.Is(err, models.ErrNotFound) {
			m, err = store.CreateMerchant(models.SystemActor, models.MerchantInput{Code: code, Name: names[code], Contact: "ops@" + strings.ToLower(code) + ".example"})
		}
		if err != nil {
			return fmt.Errorf("demo merchant %s: %w", code, err)
		}
		for _, ch := range []string{"wechat", "alipay", "unionpay"} {
			if _, err := store.FindAccount(m.ID, ch, ""); err != nil {
				todo = append(todo, missing{m, ch})
			}
		}
	}
	// Making the keys is most of the work: make them on every core at once.
	chans := make([]string, len(todo))
	for i, t := range todo {
		chans[i] = t.channel
	}
	creds := demoCredentials(chans, time.Now(), testkeys.Credentials)
	for i, t := range todo {
		spec, _ := models.LookupChannel(t.channel)
		_, _, err := store.SaveAccount(models.SystemActor, 0, models.AccountInput{
			MerchantID: t.merchant.ID, Channel: t.channel, DisplayName: spec.Name.ZH + " · " + t.merchant.Code, Methods: spec.Methods,
			FeeRateBP: 60, Enabled: true, Values: creds[i],
		})
		if err != nil {
			return fmt.Errorf("demo %s account of %s: %w", t.channel, t.merchant.Code, err)
		}
	}
	if created := len(todo); created > 0 {
		fmt.Fprintf(stdout, "\n  Demo merchants %s: %d channel accounts configured with generated test keys.\n", strings.Join(models.DemoMerchants, ", "), created)
		log.Info("demo data created", "accounts", created)
	}
	return nil
}

// cliAccount finds the channel account a command names: the merchant's
// only account at the channel, or the one --account gives (which must be
// the merchant's, at that channel). Errors start with the command's name.
func cliAccount(store *models.Store, cmd, merchant, channel string, accountID uint64) (*models.Merchant, *models.ChannelAccount, error) {
	all := models.Scope{All: true}
	m, err := store.GetMerchantByCode(all, merchant)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: no merchant %q", cmd, merchant)
	}
	if accountID != 0 {
		acct, err := store.GetAccount(all, accountID)
		if err != nil || acct.MerchantID != m.ID || acct.Channel != channel {
			return nil, nil, fmt.Errorf("%s: %s has no %s account %d", cmd, m.Code, channel, accountID)
		}
		return m, acct, nil
	}
	acct, err := store.FindAccount(m.ID, channel, "")
	switch {
	case errors.Is(err, models.ErrNotFound):
		return nil, nil, fmt.Errorf("%s: %s has no %s account; configure one first (payfuse channel configure)", cmd, m.Code, channel)
	case err != nil:
		return nil, nil, fmt.Errorf("%s: %w (use --account ID)", cmd, err)
	}
	return m, acct, nil
}

// errRefused marks an import the file's content refused (exit status 1 with
// the reason; the JSON result was already printed).
type errRefused struct{ reason string }

func (e errRefused) Error() string { return "refused: " + e.reason }

func cmdImport(g *globals, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("import", "payfuse import --merchant CODE --channel wechat|alipay|unionpay [--account ID] [--json] FILE", g, stderr)
	merchant := fs.String("merchant", "", "merchant code")
	channel := fs.String("channel", "", "wechat, alipay or unionpay")
	accountID := fs.Uint64("account", 0, "channel account id (needed when the merchant has several accounts at the channel)")
	asJSON := fs.Bool("json", false, `print {"rows", "inserted", "merged", "duplicates", "refused", "reason"} as JSON`)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("import: name exactly one statement FILE")
	}
	if *merchant == "" || *channel == "" {
		return errors.New("import: --merchant and --channel are required")
	}
	path := fs.Arg(0)
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	store, _, err := g.open()
	if err != nil {
		return err
	}
	defer store.Close()
	_, acct, err := cliAccount(store, "import", *merchant, *channel, *accountID)
	if err != nil {
		return err
	}
	sf, err := store.OpenStatement(acct, filepath.Base(path), f, st.Size())
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	res, err := store.ImportStatement(models.CLIActor(), acct.ID, sf)
	if err != nil {
		return err
	}
	if *asJSON {
		printJSON(stdout, map[string]any{"import_id": res.ImportID, "rows": res.Rows, "inserted": res.Inserted, "merged": res.Merged,
			"duplicates": res.Duplicates, "refused": res.Refused, "reason": res.Reason.EN, "already_imported": res.AlreadyImported})
	} else if res.AlreadyImported {
		fmt.Fprintf(stdout, "already imported (import %d); nothing added\n", res.ImportID)
	} else if !res.Refused {
		fmt.Fprintf(stdout, "imported %s: %d rows, %d new, %d merged, %d duplicates (import %d)\n", filepath.Base(path), res.Rows, res.Inserted, res.Merged, res.Duplicates, res.ImportID)
	}
	if res.Refused {
		return errRefused{reason: res.Reason.EN}
	}
	return nil
}
