package all

import (
	"io"

	"payfuse/channels"
	"payfuse/channels/alipay"
	"payfuse/channels/wechat"
)

// MaxInflated bounds what a compressed statement may inflate to: 1 GiB holds
// a statement of some three million rows; a zip bomb
// is refused long before it fills memory or disk).
const MaxInflated = 1 << 30

// ParseStatement streams a channel's statement file (r of size bytes) as
// canonical records through fn and returns the totals it checked against the
// file's own summary. A file it cannot take whole is a *channels.BillError.
func ParseStatement(code string, r io.ReaderAt, size int64, fn func(channels.Record) error) (channels.Totals, error) {
	switch code {
	case "wechat":
		return wechat.ParseTradeBill(io.NewSectionReader(r, 0, size), fn)
	case "alipay":
		return alipay.ParseTradeBill(r, size, MaxInflated, fn)
	}
	return channels.Totals{}, channels.Refuse(0,
		"%s has no native statement format here: its statements are imported through the account's saved column mapping",
		"%s 没有内置的对账单格式：其对账单通过账户保存的列映射导入", code)
}
