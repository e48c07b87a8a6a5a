// Package kinds holds the flows PayFuse runs: bill sync, folder import,
// reconciliation and the rollup check, each a flows.Handler over the
// ledger's store and the channels' clients.
package kinds

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"payfuse/channels"
	"payfuse/channels/alipay"
	"payfuse/channels/wechat"
	"payfuse/flows"
	"payfuse/models"
)

// Config is what the flows need from outside the database.
type Config struct {
	// WeChatBaseURL and AlipayGateway point the bill clients at the
	// channels ("" for their production addresses); tests and staging
	// point them at fakes.
	WeChatBaseURL string
	AlipayGateway string
	// HTTP is the client for channel calls (nil for the clients' defaults).
	HTTP *http.Client
	// DropRoot is the directory folder-import flows watch folders under;
	// "" disables folder import. A flow names a folder relative to it.
	DropRoot string
	// TempDir receives downloads while they are checked and imported.
	TempDir string
	// Webhooks is where trigger rules may send webhooks (the allow-list of
	// otherwise-refused destinations) and how.
	Webhooks TriggerConfig
}

// Register adds every kind to the engine.
func Register(e *flows.Engine, s *models.Store, cfg Config) {
	k := &kinds{s: s, cfg: cfg}
	e.Register(models.FlowBillSync, flows.HandlerFunc(k.billSync))
	e.Register(models.FlowReconcile, flows.HandlerFunc(k.reconcile))
	e.Register(models.FlowRollupCheck, flows.HandlerFunc(k.rollupCheck))
	e.Register(models.FlowFolderImport, flows.HandlerFunc(k.folderImport))
	RegisterTriggers(e, s, cfg.Webhooks)
}

type kinds struct {
	s   *models.Store
	cfg Config
}

// actor is who the ledger records as making a flow's changes.
func actor(run *flows.Run) models.Actor {
	return models.Actor{Name: "flow:" + run.Flow.Name, IP: "local"}
}

// day is the business date a run works on: lagDays before the day of its
// scheduled occurrence (or of now, for a manual run), in the merchant's zone.
func day(run *flows.Run, lagDays int) string {
	at := run.Now()
	if run.Occurrence != nil {
		at = *run.Occurrence
	}
	return at.In(run.Flow.Location()).AddDate(0, 0, -lagDays).Format(time.DateOnly)
}

// accounts are the channel accounts a flow covers: its own, or every
// account of its merchant at the given channels (all when none given).
func (k *kinds) accounts(run *flows.Run, only ...string) ([]models.ChannelAccount, error) {
	scope := models.Scope{Merchants: []string{run.Flow.MerchantCode}}
	list, err := k.s.ListAccounts(scope, models.AccountFilter{})
	if err != nil {
		return nil, err
	}
	var out []models.ChannelAccount
	for _, a := range list {
		if run.Flow.AccountID != nil && a.ID != *run.Flow.AccountID {
			continue
		}
		if len(only) > 0 && !slices.Contains(only, a.Channel) {
			continue
		}
		out = append(out, a)
	}
	if run.Flow.AccountID != nil && len(out) == 0 {
		return nil, flows.Permanent(flows.Fail("the flow's channel account %d no longer exists or is not of a supported channel",
			"该流程的渠道账户 %d 已不存在或渠道不受支持", *run.Flow.AccountID))
	}
	return out, nil
}

// progress is a multi-account run's checkpoint: the accounts done.
type progress struct {
	Done   []uint64         `json:"done"`
	Counts models.RunCounts `json:"counts"`
}

func resume(run *flows.Run) progress {
	var p progress
	if run.Resume != "" {
		json.Unmarshal([]byte(run.Resume), &p)
	}
	return p
}

func (p *progress) save(run *flows.Run, id uint64) error {
	p.Done = append(p.Done, id)
	b, _ := json.Marshal(p)
	return run.Checkpoint(string(b), p.Counts)
}

// BillSyncParams are a bill-sync flow's settings.
type BillSyncParams struct {
	LagDays   int    `json:"lag_days"`  // the day before the occurrence by default (1)
	Date      string `json:"date"`      // a fixed business date instead (a one-off backfill), YYYY-MM-DD
	BillType  string `json:"bill_type"` // WeChat Pay: ALL (default), SUCCESS or REFUND
	Reconcile *bool  `json:"reconcile"` // reconcile the day after importing (default true)
}

// billSync downloads each account's statement of the day from its channel,
// imports it through the ledger's import path (whole or not at all; the same
// file again is "already imported"), then reconciles the day.
func (k *kinds) billSync(ctx context.Context, run *flows.Run) (flows.Counts, error) {
	p := BillSyncParams{LagDays: 1, BillType: wechat.BillTypeAll}
	if err := run.Params(&p); err != nil {
		return flows.Counts{}, flows.Permanent(flows.Fail("the flow's settings are not valid JSON: %v", "流程设置不是有效的 JSON：%v", err))
	}
	if p.LagDays < 0 || p.LagDays > 90 {
		return flows.Counts{}, flows.Permanent(flows.Fail("lag_days must be between 0 and 90", "lag_days 必须在 0 到 90 之间"))
	}
	date := day(run, p.LagDays)
	if p.Date != "" {
		if _, err := time.Parse(time.DateOnly, p.Date); err != nil {
			return flows.Counts{}, flows.Permanent(flows.Fail("date %q is not a YYYY-MM-DD date", "date %q 不是 YYYY-MM-DD 格式的日期", p.Date))
		}
		date = p.Date
	}
	accts, err := k.accounts(run, "wechat", "alipay")
	if err != nil {
		return flows.Counts{}, err
	}
	if len(accts) == 0 {
		return flows.Counts{}, flows.Permanent(flows.Fail("%s has no WeChat Pay or Alipay account to download bills for",
			"%s 没有可下载账单的微信支付或支付宝账户", run.Flow.MerchantCode))
	}
	pr := resume(run)
	for i := range accts {
		acct := &accts[i]
		if slices.Contains(pr.Done, acct.ID) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return pr.Counts, err
		}
		if !acct.Enabled {
			run.Logf("%s %s: disabled, skipped", acct.Channel, acct.DisplayName)
			if err := pr.save(run, acct.ID); err != nil {
				return pr.Counts, err
			}
			continue
		}
		if err := k.syncAccount(ctx, run, acct, date, p, &pr.Counts); err != nil {
			return pr.Counts, err
		}
		if err := pr.save(run, acct.ID); err != nil {
			return pr.Counts, err
		}
	}
	return pr.Counts, nil
}

func (k *kinds) syncAccount(ctx context.Context, run *flows.Run, acct *models.ChannelAccount, date string, p BillSyncParams, c *models.RunCounts) error {
	_, creds, err := k.s.AccountCredentials(acct.ID)
	if err != nil {
		return flows.Permanent(flows.Fail("the credentials of %s cannot be read: %v", "无法读取 %s 的凭据：%v", acct.DisplayName, err))
	}
	defer clear(creds)
	f, err := os.CreateTemp(k.cfg.TempDir, "payfuse-bill-*")
	if err != nil {
		return fmt.Errorf("bill sync: %w", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()

	name := fmt.Sprintf("%s-%s-%s", acct.Channel, date, acct.DisplayName)
	var dlErr error
	switch acct.Channel {
	case "wechat":
		cl := wechat.BillClient{BaseURL: k.cfg.WeChatBaseURL, HTTP: k.cfg.HTTP, Now: run.Now}
		info, err := cl.DownloadTradeBill(ctx, creds, date, p.BillType, f)
		dlErr = err
		name += "-" + strings.ToLower(info.Type) + ".csv"
	case "alipay":
		cl := alipay.BillClient{Gateway: k.cfg.AlipayGateway, HTTP: k.cfg.HTTP, Now: run.Now}
		_, dlErr = cl.DownloadTradeBill(ctx, creds, date, f)
		name += ".zip"
	}
	if dlErr != nil {
		if noBill(dlErr) {
			run.Logf("%s %s %s: the channel has no bill for the day (no trades)", acct.Channel, acct.DisplayName, date)
			d, err := k.s.RecordEmptyStatement(actor(run), acct.ID, date)
			if err != nil {
				return err
			}
			c.Discrepancies += d.Discrepancies()
			run.Logf("%s %s %s reconciled against the empty day: %s, %d discrepancies", acct.Channel, acct.DisplayName, date, d.Status, d.Discrepancies())
			return nil
		}
		return downloadFailure(acct, date, dlErr)
	}
	st, err := f.Stat()
	if err != nil {
		return err
	}
	sf, err := k.s.OpenStatement(acct, name, f, st.Size())
	if err != nil {
		return err
	}
	res, err := k.s.ImportStatement(actor(run), acct.ID, sf)
	if err != nil {
		return err
	}
	switch {
	case res.Refused:
		return flows.Permanent(flows.Fail("%s's bill of %s was refused: %s", "%s 在 %s 的账单被拒绝：%s", acct.DisplayName, date, res.Reason.EN))
	case res.AlreadyImported:
		run.Logf("%s %s %s: already imported (import %d)", acct.Channel, acct.DisplayName, date, res.ImportID)
	default:
		run.Logf("%s %s %s: %d rows, %d new, %d merged, %d duplicates (import %d)", acct.Channel, acct.DisplayName, date,
			res.Rows, res.Inserted, res.Merged, res.Duplicates, res.ImportID)
	}
	c.RowsRead += res.Rows
	c.RowsNew += res.Inserted
	c.RowsMerged += res.Merged
	return k.reconcileAfter(run, acct, date, p, c)
}

func (k *kinds) reconcileAfter(run *flows.Run, acct *models.ChannelAccount, date string, p BillSyncParams, c *models.RunCounts) error {
	if p.Reconcile != nil && !*p.Reconcile {
		return nil
	}
	d, err := k.s.Reconcile(actor(run), models.Scope{All: true}, acct.ID, date)
	if err != nil {
		return err
	}
	c.Discrepancies += d.Discrepancies()
	run.Logf("%s %s %s reconciled: %s, %d discrepancies, %d open", acct.Channel, acct.DisplayName, date, d.Status, d.Discrepancies(), d.Open)
	return nil
}

func noBill(err error) bool {
	var ae *alipay.DownloadError
	return errors.Is(err, wechat.ErrNoBill) || errors.As(err, &ae) && ae.Reason == alipay.DownloadNoBill
}

// downloadFailure turns a bill client's error into the run's: retryable
// (not ready, busy, network) or permanent (credentials, permissions).
func downloadFailure(acct *models.ChannelAccount, date string, err error) error {
	msg := channels.Text{EN: err.Error(), ZH: err.Error()}
	retry := true
	var we *wechat.DownloadError
	var ae *alipay.DownloadError
	switch {
	case errors.As(err, &we):
		msg, retry = we.Message, we.Retryable()
	case errors.As(err, &ae):
		msg, retry = ae.Message, ae.Retryable
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return err
	}
	fe := &flows.Error{Message: channels.Text{
		EN: fmt.Sprintf("%s %s, bill of %s: %s", acct.Channel, acct.DisplayName, date, msg.EN),
		ZH: fmt.Sprintf("%s %s，%s 的账单：%s", acct.Channel, acct.DisplayName, date, msg.ZH)}, Err: err}
	if !retry {
		return flows.Permanent(fe)
	}
	return fe
}

// DayParams are the settings of flows that work on one business date.
type DayParams struct {
	LagDays int  `json:"lag_days"`
	Days    int  `json:"days"`   // rollup check: how many days back (default 7)
	Repair  bool `json:"repair"` // rollup check: repair what differs
}

// reconcile reconciles every covered account's day.
func (k *kinds) reconcile(ctx context.Context, run *flows.Run) (flows.Counts, error) {
	p := DayParams{LagDays: 1}
	if err := run.Params(&p); err != nil {
		return flows.Counts{}, flows.Permanent(flows.Fail("the flow's settings are not valid JSON: %v", "流程设置不是有效的 JSON：%v", err))
	}
	date := day(run, p.LagDays)
	accts, err := k.accounts(run)
	if err != nil {
		return flows.Counts{}, err
	}
	var c flows.Counts
	for i := range accts {
		if err := ctx.Err(); err != nil {
			return c, err
		}
		d, err := k.s.Reconcile(actor(run), models.Scope{All: true}, accts[i].ID, date)
		if err != nil {
			return c, err
		}
		c.RowsRead += d.Matched + d.Discrepancies()
		c.Discrepancies += d.Discrepancies()
		run.Logf("%s %s %s: %s, %d matched, %d discrepancies, %d open", accts[i].Channel, accts[i].DisplayName, date, d.Status, d.Matched, d.Discrepancies(), d.Open)
	}
	return c, nil
}

// rollupCheck recomputes the merchant's rollups of the last days and, when
// the flow says so, repairs them.
func (k *kinds) rollupCheck(ctx context.Context, run *flows.Run) (flows.Counts, error) {
	p := DayParams{Days: 7}
	if err := run.Params(&p); err != nil {
		return flows.Counts{}, flows.Permanent(flows.Fail("the flow's settings are not valid JSON: %v", "流程设置不是有效的 JSON：%v", err))
	}
	if p.Days < 1 || p.Days > 366 {
		return flows.Counts{}, flows.Permanent(flows.Fail("days must be between 1 and 366", "days 必须在 1 到 366 之间"))
	}
	to := day(run, 0)
	t, _ := time.Parse(time.DateOnly, to)
	from := t.AddDate(0, 0, -(p.Days - 1)).Format(time.DateOnly)
	res, err := k.s.CheckRollups(actor(run), models.Scope{Merchants: []string{run.Flow.MerchantCode}}, from, to, p.Repair)
	if err != nil {
		return flows.Counts{}, err
	}
	for _, d := range res.Diffs {
		run.Logf("%s account %d %s: rollup %d payments / %d fen, ledger %d / %d", d.BizDate, d.AccountID, d.Method,
			d.Rollup.Payments, d.Rollup.AmountSucceeded, d.Raw.Payments, d.Raw.AmountSucceeded)
	}
	run.Logf("%s..%s: %d groups compared, %d differ%s", from, to, res.Groups, len(res.Diffs), map[bool]string{true: ", repaired", false: ""}[res.Repaired])
	c := flows.Counts{RowsRead: res.Groups, Discrepancies: len(res.Diffs)}
	if len(res.Diffs) > 0 && !res.Repaired {
		return c, flows.Permanent(flows.Fail("%d daily rollups of %s..%s differ from the ledger (see the log); run the check with repair to fix them",
			"%[2]s..%[3]s 有 %[1]d 个日汇总与账本不符（见日志）；开启修复后重新运行即可修正", len(res.Diffs), from, to))
	}
	return c, nil
}
