package models

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"payfuse/channels"
	"payfuse/channels/generic"
)

// unionPayCSV is a UnionPay statement export as a merchant downloads it:
// a title, the merchant number, the detail table and a 合计 row.
func unionPayCSV(merID string, total string) string {
	return "\uFEFF银联商户交易明细\r\n" +
		"商户代码：" + merID + "\r\n" +
		"查询流水号,商户订单号,交易类型,交易金额,商户手续费,应答码,交易时间,原交易查询流水号\r\n" +
		"`612603010915020000001,`ORD-1,01,100.00,0.60,00,2026-03-01 09:15:02,\r\n" +
		"`612603011000000000002,`ORD-2,01,50.00,0.30,00,2026-03-01 10:00:00,\r\n" +
		"`612603011300000000004,`RF-1,04,-20.00,-0.12,00,2026-03-01 13:00:00,612603010915020000001\r\n" +
		"合计,3笔,,130.00,,,,\r\n"
}

func unionPayTestMapping() generic.Mapping {
	return generic.Mapping{
		Columns: map[string][]string{
			generic.FieldChannelRef: {"查询流水号"}, generic.FieldOrderNo: {"商户订单号"}, generic.FieldKind: {"交易类型"},
			generic.FieldAmount: {"交易金额"}, generic.FieldFee: {"商户手续费"}, generic.FieldStatus: {"应答码"},
			generic.FieldTime: {"交易时间"}, generic.FieldPaymentRef: {"原交易查询流水号"},
		},
		Statuses:      map[string]string{"00": "succeeded", "06": "failed"},
		RefundWords:   []string{"04"},
		AccountLabels: []string{"商户代码"},
		Footer:        &generic.Footer{Marker: "合计", CountColumn: "商户订单号", AmountColumn: "交易金额"},
	}
}

func importCSV(t *testing.T, s *Store, acct *ChannelAccount, name, data string) ImportResult {
	t.Helper()
	f, err := s.OpenStatement(acct, name, bytes.NewReader([]byte(data)), int64(len(data)))
	if err != nil {
		t.Fatalf("open %s: %v", name, err)
	}
	res, err := s.ImportStatement(web, acct.ID, f)
	if err != nil {
		t.Fatalf("import %s: %v", name, err)
	}
	return res
}

func TestMappedUnionPayImport(t *testing.T) {
	s, _ := vaultStore(t)
	m := mustMerchant(t, s, "SHOP_SH")
	acct, values := mustAccount(t, s, m, "unionpay")
	merID := string(values["mer_id"])
	data := unionPayCSV(merID, "130.00")

	// Without a mapping the file cannot be opened, and the message says where to set one.
	_, err := s.OpenStatement(acct, "a.csv", bytes.NewReader([]byte(data)), int64(len(data)))
	var be *channels.BillError
	if !errors.As(err, &be) || !strings.Contains(err.Error(), fmt.Sprintf("/channels/%d/mapping", acct.ID)) {
		t.Fatalf("no mapping: %v", err)
	}

	// An incomplete mapping is refused and nothing is saved.
	var me *MappingError
	if err := s.SaveMapping(web, acct.ID, generic.Mapping{Columns: map[string][]string{generic.FieldAmount: {"交易金额"}}}); !errors.As(err, &me) || len(me.Problems) == 0 {
		t.Fatalf("incomplete mapping saved: %v", err)
	}
	if _, err := s.GetMapping(Scope{All: true}, acct.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after a refused save: %v", err)
	}

	if err := s.SaveMapping(web, acct.ID, unionPayTestMapping()); err != nil {
		t.Fatal(err)
	}
	saved, err := s.GetMapping(Scope{Merchants: []string{"SHOP_SH"}}, acct.ID)
	if err != nil || saved.Mapping.Column(generic.FieldChannelRef)[0] != "查询流水号" || saved.UpdatedBy != web.Name {
		t.Fatalf("saved mapping: %+v %v", saved, err)
	}
	if _, err := s.GetMapping(Scope{Merchants: []string{"OTHER"}}, acct.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("out of scope: %v", err)
	}
	var audits int64
	s.DB.Model(&AuditLog{}).Where("action = ? AND object_id = ?", ActMapping, idStr(acct.ID)).Count(&audits)
	if audits != 1 {
		t.Fatalf("%d audit entries for the mapping", audits)
	}

	res := importCSV(t, s, acct, "unionpay-20260301.csv", data)
	if res.Refused || res.Rows != 3 || res.Inserted != 3 {
		t.Fatalf("import: %+v", res)
	}
	p := txn(t, s, channels.KindPayment, "612603010915020000001")
	if p.Amount != 10000 || p.Fee != 60 || p.MerchantOrderNo != "ORD-1" || p.Channel != "unionpay" || p.RefundState != "partial" || p.BizDate != "2026-03-01" {
		t.Fatalf("payment: %+v", p)
	}
	r := txn(t, s, channels.KindRefund, "612603011300000000004")
	if r.Amount != 2000 || r.PaymentRef != "612603010915020000001" {
		t.Fatalf("refund: %+v", r)
	}

	// The same file again adds nothing.
	if again := importCSV(t, s, acct, "copy.csv", data); !again.AlreadyImported {
		t.Fatalf("re-import: %+v", again)
	}

	// A statement of another UnionPay merchant is refused whole.
	other := strings.ReplaceAll(unionPayCSV("898000000000999", "130.00"), "6126", "7126")
	res = importCSV(t, s, acct, "other.csv", other)
	if !res.Refused || !strings.Contains(res.Reason.EN, "898000000000999") || !strings.Contains(res.Reason.ZH, "898000000000999") {
		t.Fatalf("other merchant's file: %+v", res)
	}
	var n int64
	s.DB.Model(&Transaction{}).Where("channel_ref LIKE ?", "7126%").Count(&n)
	if n != 0 {
		t.Fatalf("%d rows of a refused file in the ledger", n)
	}

	// A footer that disagrees with the rows refuses the file.
	bad := strings.ReplaceAll(strings.Replace(data, "合计,3笔,,130.00", "合计,3笔,,131.00", 1), "6126", "8126")
	if res := importCSV(t, s, acct, "bad.csv", bad); !res.Refused || !strings.Contains(res.Reason.EN, "131.00") {
		t.Fatalf("disagreeing footer: %+v", res)
	}

	// Saving again replaces the mapping and is audited again.
	m2 := unionPayTestMapping()
	m2.Footer = nil
	if err := s.SaveMapping(web, acct.ID, m2); err != nil {
		t.Fatal(err)
	}
	if saved, _ := s.GetMapping(Scope{All: true}, acct.ID); saved.Mapping.Footer != nil {
		t.Fatalf("replaced mapping still has a footer")
	}
	var rows int64
	s.DB.Model(&ColumnMapping{}).Where("account_id = ?", acct.ID).Count(&rows)
	s.DB.Model(&AuditLog{}).Where("action = ?", ActMapping).Count(&audits)
	if rows != 1 || audits != 2 {
		t.Fatalf("%d mapping rows, %d audits", rows, audits)
	}
}
