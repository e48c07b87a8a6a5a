package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"payfuse/flows"
	"payfuse/flows/kinds"
	"payfuse/flows/webhook"
	"payfuse/models"
)

const flowSynopsis = "payfuse flow list [--merchant CODE] [--json] | payfuse flow run NAME [--json]"

// flowSettings are the flags the flow kinds need; resolve reads them after
// the flag set has parsed.
type flowSettings struct {
	cfg   kinds.Config
	allow string
}

// flowFlags adds the settings the flow kinds need to a command's flags.
func flowFlags(fs *flag.FlagSet) *flowSettings {
	f := &flowSettings{}
	fs.StringVar(&f.cfg.WeChatBaseURL, "wechat-api-base", envOr("PAYFUSE_WECHAT_API_BASE", ""),
		"WeChat Pay API address for bill downloads; empty for https://api.mch.weixin.qq.com (env PAYFUSE_WECHAT_API_BASE)")
	fs.StringVar(&f.cfg.AlipayGateway, "alipay-gateway", envOr("PAYFUSE_ALIPAY_GATEWAY", ""),
		"Alipay gateway for bill downloads; empty for https://openapi.alipay.com/gateway.do (env PAYFUSE_ALIPAY_GATEWAY)")
	fs.StringVar(&f.cfg.DropRoot, "drop-root", envOr("PAYFUSE_DROP_ROOT", ""),
		"directory whose sub-folders folder-import flows watch; empty turns folder import off (env PAYFUSE_DROP_ROOT)")
	fs.StringVar(&f.allow, "webhook-allow", envOr("PAYFUSE_WEBHOOK_ALLOW", ""),
		"comma-separated hosts, IPs or CIDRs that webhooks may reach although private or loopback (env PAYFUSE_WEBHOOK_ALLOW)")
	fs.BoolVar(&f.cfg.Webhooks.Allow.HTTP, "webhook-allow-http", os.Getenv("PAYFUSE_WEBHOOK_ALLOW_HTTP") == "1",
		"allow plain http to the allow-listed destinations (env PAYFUSE_WEBHOOK_ALLOW_HTTP=1)")
	return f
}

func (f *flowSettings) resolve() (kinds.Config, error) {
	cfg := f.cfg
	if f.allow != "" {
		l, err := webhook.ParseAllowList(f.allow)
		if err != nil {
			return cfg, fmt.Errorf("--webhook-allow: %w", err)
		}
		l.HTTP = cfg.Webhooks.Allow.HTTP
		cfg.Webhooks.Allow = l
	}
	return cfg, nil
}

// cmdFlow lists flows or runs one now. A run from the command line takes
// the flow's lease like a server's engine does, so it never runs alongside
// a scheduled run of the same flow.
func cmdFlow(ctx context.Context, g *globals, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, "Usage:\n  "+flowSynopsis+"\n")
		if len(args) == 0 {
			return errors.New("flow: name a subcommand: list or run")
		}
		return flag.ErrHelp
	}
	switch args[0] {
	case "list":
		return cmdFlowList(g, args[1:], stdout, stderr)
	case "run":
		return cmdFlowRun(ctx, g, args[1:], stdout, stderr)
	}
	return fmt.Errorf("flow: unknown subcommand %q (want list or run)", args[0])
}

func cmdFlowList(g *globals, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("flow list", "payfuse flow list [--merchant CODE] [--json]", g, stderr)
	merchant := fs.String("merchant", "", "only this merchant's flows")
	asJSON := fs.Bool("json", false, "print the flows as a JSON array")
	if err := fs.Parse(args); err != nil {
		return err
	}
	store, _, err := g.open()
	if err != nil {
		return err
	}
	defer store.Close()
	list, err := store.ListFlows(models.Scope{All: true}, models.FlowFilter{MerchantCode: *merchant})
	if err != nil {
		return err
	}
	if *asJSON {
		out := make([]map[string]any, 0, len(list))
		for _, f := range list {
			out = append(out, map[string]any{"name": f.Name, "kind": f.Kind, "merchant": f.MerchantCode, "account_id": f.AccountID,
				"schedule": f.Schedule, "enabled": f.Enabled, "next_run_at": f.NextRunAt, "last_status": f.LastStatus,
				"last_run_at": f.LastRunAt, "failure_streak": f.FailureStreak})
		}
		printJSON(stdout, out)
		return nil
	}
	if len(list) == 0 {
		fmt.Fprintln(stdout, "no flows")
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 2, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tKIND\tMERCHANT\tSCHEDULE\tENABLED\tNEXT RUN (UTC)\tLAST")
	for _, f := range list {
		next := "-"
		if f.NextRunAt != nil {
			next = f.NextRunAt.UTC().Format(time.DateTime)
		}
		sched := f.Schedule
		if sched == "" {
			sched = "on demand"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%v\t%s\t%s\n", f.Name, f.Kind, f.MerchantCode, sched, f.Enabled, next, orDash(f.LastStatus))
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func cmdFlowRun(ctx context.Context, g *globals, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("flow run", "payfuse flow run NAME [--json]", g, stderr)
	asJSON := fs.Bool("json", false, `print {"run_id", "status", "rows_read", "rows_new", "rows_merged", "discrepancies", "error", "log"} as JSON`)
	settings := flowFlags(fs)
	// The flow's name may come before the flags.
	var name string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		name, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if name == "" && fs.NArg() > 0 {
		name = fs.Arg(0)
	} else if fs.NArg() > 0 {
		return fmt.Errorf("flow run: unexpected argument %q", fs.Arg(0))
	}
	if name == "" {
		return errors.New("flow run: name the flow to run (payfuse flow list shows them)")
	}
	store, dsn, err := g.open()
	if err != nil {
		return err
	}
	defer store.Close()
	log, err := g.logger(stderr)
	if err != nil {
		return err
	}
	key, err := g.masterKey(dsn, log)
	if err != nil {
		return err
	}
	if store.Vault, err = models.NewVault(key); err != nil {
		return err
	}
	all := models.Scope{All: true}
	f, err := store.GetFlowByName(all, name)
	if errors.Is(err, models.ErrNotFound) {
		return fmt.Errorf("flow run: no flow named %q (payfuse flow list shows them)", name)
	} else if err != nil {
		return err
	}
	cfg, err := settings.resolve()
	if err != nil {
		return err
	}
	if cfg.TempDir == "" {
		cfg.TempDir = os.TempDir()
	}
	e := flows.New(store)
	e.Logger = log
	e.Alerter = kinds.StoreAlerter{Store: store}
	kinds.Register(e, store, cfg)
	run, err := e.RunNow(all, f.ID, models.CLIActor())
	var fe *flows.Error
	if errors.As(err, &fe) {
		return fmt.Errorf("flow run: %s", fe.Message.EN)
	} else if err != nil {
		return fmt.Errorf("flow run: %w", err)
	}
	done, err := e.WaitRun(ctx, run.ID)
	stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e.Stop(stopCtx)
	if err != nil {
		return fmt.Errorf("flow run: %w", err)
	}
	if done.Status == models.RunRunning {
		// Interrupted (Ctrl-C): the stop above marked it; read it again.
		if r, err := store.GetRun(all, run.ID); err == nil {
			done = r
		}
	}
	if *asJSON {
		printJSON(stdout, map[string]any{"run_id": done.ID, "flow": f.Name, "status": done.Status, "rows_read": done.RowsRead,
			"rows_new": done.RowsNew, "rows_merged": done.RowsMerged, "discrepancies": done.Discrepancies,
			"error": done.ErrorText().EN, "retry_at": done.RetryAt, "log": done.Log})
	} else {
		fmt.Fprintf(stdout, "run %d of %s: %s — %d read, %d new, %d merged, %d discrepancies\n", done.ID, f.Name, done.Status,
			done.RowsRead, done.RowsNew, done.RowsMerged, done.Discrepancies)
		if done.Log != "" {
			fmt.Fprint(stdout, done.Log)
		}
	}
	switch done.Status {
	case models.RunSucceeded:
		return nil
	case models.RunRetrying:
		return fmt.Errorf("flow run: %s (the next attempt is scheduled)", done.ErrorText().EN)
	}
	return fmt.Errorf("flow run: %s", orDash(done.ErrorText().EN))
}
