package models

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"gorm.io/gorm"

	"payfuse/channels"
	"payfuse/channels/all"
)

// Import statuses.
const (
	ImportTaken   = "taken"
	ImportRefused = "refused"
)

// ActImport is the audit action of a statement import (taken or refused).
const ActImport = "statement.import"

// Import is one statement file brought into the ledger, or refused.
type Import struct {
	ID           uint64 `gorm:"primaryKey"`
	AccountID    uint64
	MerchantCode string
	Channel      string
	FileName     string
	FileHash     string
	Bytes        int64
	Status       string
	Rows         int
	Inserted     int
	Merged       int
	Duplicates   int
	Reason       string // JSON channels.Text when refused
	CreatedBy    string
	CreatedAt    time.Time
}

// ReasonText is why the import was refused, in both languages.
func (im *Import) ReasonText() channels.Text {
	var t channels.Text
	json.Unmarshal([]byte(im.Reason), &t)
	return t
}

// ImportResult is what an import did. A refused file is not an error: it is
// a result with Refused set and the reason.
type ImportResult struct {
	ImportID uint64
	IngestStats
	AlreadyImported bool
	Refused         bool
	Reason          channels.Text
}

// StatementFile describes the file being imported.
type StatementFile struct {
	Name  string
	Hash  string // hex SHA-256 of the file's bytes
	Bytes int64
	// Parse streams the file's records to fn and returns the totals the rows
	// add up to (checked against the file's own summary by the parser).
	Parse func(fn func(channels.Record) error) (channels.Totals, error)
	// Progress, when set, is told how many rows have been merged so far
	// (after every batch), for a progress bar. It must not block.
	Progress func(rows int)
}

// OpenStatement prepares a statement file (r, size bytes) for import into
// acct: it hashes the bytes and picks the parser the account's statements
// need — the channel's native format for WeChat Pay and Alipay, the saved
// column mapping for the others. The reader must stay open until the import ends.
func (s *Store) OpenStatement(acct *ChannelAccount, name string, r io.ReaderAt, size int64) (StatementFile, error) {
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(r, 0, size)); err != nil {
		return StatementFile{}, fmt.Errorf("ledger: unable to read %s: %w", name, err)
	}
	f := StatementFile{Name: name, Hash: hex.EncodeToString(h.Sum(nil)), Bytes: size}
	switch acct.Channel {
	case "wechat", "alipay":
		f.Parse = func(fn func(channels.Record) error) (channels.Totals, error) {
			return all.ParseStatement(acct.Channel, r, size, fn)
		}
	default:
		parse, err := s.mappedStatement(acct, r, size)
		if err != nil {
			return StatementFile{}, err
		}
		f.Parse = parse
	}
	return f, nil
}

// refusal extracts the user-facing reason of a refused file, or false for
// errors that are not the file's fault (the database, say).
func refusal(err error) (channels.Text, bool) {
	var be *channels.BillError
	var re *RecordError
	switch {
	case errors.As(err, &be):
		t := be.Message
		if be.Line > 0 {
			t = channels.Text{EN: fmt.Sprintf("line %d: %s", be.Line, t.EN), ZH: fmt.Sprintf("第 %d 行：%s", be.Line, t.ZH)}
		}
		return t, true
	case errors.As(err, &re):
		return channels.Text{EN: re.Error(), ZH: fmt.Sprintf("第 %d 条记录：%s", re.Index+1, re.Message.ZH)}, true
	case errors.Is(err, channels.ErrBadDecimal):
		return channels.Text{EN: err.Error(), ZH: "金额格式错误：" + err.Error()}, true
	}
	return channels.Text{}, false
}

func (s *Store) takenImport(db *gorm.DB, accountID uint64, hash string) (*Import, error) {
	var im Import
	err := db.Where("account_id = ? AND file_hash = ? AND status = ?", accountID, hash, ImportTaken).First(&im).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &im, nil
}

// ImportStatement brings a statement file into the ledger for one channel
// account, whole or not at all: the rows are merged in one database
// transaction (a crash midway leaves nothing), the file's hash is recorded so
// the same file again is "already imported", and a refused file is recorded
// with its reason and changes nothing else. Memory stays bounded: records are
// merged in batches as the parser streams them.
func (s *Store) ImportStatement(a Actor, accountID uint64, f StatementFile) (ImportResult, error) {
	var res ImportResult
	if im, err := s.takenImport(s.DB, accountID, f.Hash); err != nil {
		return res, importFailure(f.Name, err)
	} else if im != nil {
		return ImportResult{ImportID: im.ID, AlreadyImported: true}, nil
	}
	var acct ChannelAccount
	err := s.Tx(func(tx *gorm.DB) error {
		g, err := s.newIngester(tx, accountID, SourceStatement)
		if err != nil {
			return err
		}
		acct = *g.acct
		// Re-check under the account lock: two imports of one file at once.
		if im, err := s.takenImport(tx, accountID, f.Hash); err != nil {
			return err
		} else if im != nil {
			res = ImportResult{ImportID: im.ID, AlreadyImported: true}
			return nil
		}
		im := Import{AccountID: accountID, MerchantCode: acct.MerchantCode, Channel: acct.Channel, FileName: truncate(f.Name, 255),
			FileHash: f.Hash, Bytes: f.Bytes, Status: ImportTaken, CreatedBy: a.Name, CreatedAt: g.now}
		if err := tx.Create(&im).Error; err != nil {
			return fmt.Errorf("ledger: unable to record the import: %w", err)
		}
		g.importID = &im.ID
		batch := make([]channels.Record, 0, ingestBatch)
		offset := 0
		flush := func() error {
			if len(batch) == 0 {
				return nil
			}
			err := g.add(batch, offset)
			offset += len(batch)
			batch = batch[:0]
			if err == nil && f.Progress != nil {
				f.Progress(offset)
			}
			return err
		}
		totals, err := f.Parse(func(r channels.Record) error {
			batch = append(batch, r)
			if len(batch) == ingestBatch {
				return flush()
			}
			return nil
		})
		if err != nil {
			return err
		}
		if err := flush(); err != nil {
			return err
		}
		if totals.Payments+totals.Refunds != g.stats.Rows {
			return channels.Refuse(0, "the parser counted %d rows but delivered %d", "解析器统计 %d 行，实际交付 %d 行", totals.Payments+totals.Refunds, g.stats.Rows)
		}
		if err := g.finish(); err != nil {
			return err
		}
		res = ImportResult{ImportID: im.ID, IngestStats: g.stats}
		if err := tx.Model(&Import{}).Where("id = ?", im.ID).Updates(map[string]any{
			"rows": g.stats.Rows, "inserted": g.stats.Inserted, "merged": g.stats.Merged, "duplicates": g.stats.Duplicates,
		}).Error; err != nil {
			return err
		}
		return writeAudit(tx, a, g.now, AuditEvent{Action: ActImport, ObjectType: "import", ObjectID: idStr(im.ID),
			MerchantCode: acct.MerchantCode, Detail: fmt.Sprintf("%s taken: %d rows, %d new, %d merged, %d duplicates", f.Name, g.stats.Rows, g.stats.Inserted, g.stats.Merged, g.stats.Duplicates)})
	})
	if err == nil {
		s.Metrics.Ingested(SourceStatement, res.IngestStats)
		return res, nil
	}
	reason, isRefusal := refusal(err)
	if !isRefusal {
		return res, importFailure(f.Name, err)
	}
	// The file is refused whole; record why (the ledger is untouched).
	raw, _ := json.Marshal(reason)
	im := Import{AccountID: accountID, MerchantCode: acct.MerchantCode, Channel: acct.Channel, FileName: truncate(f.Name, 255),
		FileHash: f.Hash, Bytes: f.Bytes, Status: ImportRefused, Reason: string(raw), CreatedBy: a.Name, CreatedAt: s.now()}
	werr := s.Tx(func(tx *gorm.DB) error {
		if acct.ID == 0 {
			var ca ChannelAccount
			if err := tx.First(&ca, accountID).Error; err == nil {
				im.MerchantCode, im.Channel = ca.MerchantCode, ca.Channel
			}
		}
		if err := tx.Create(&im).Error; err != nil {
			return err
		}
		return writeAudit(tx, a, im.CreatedAt, AuditEvent{Action: ActImport, ObjectType: "import", ObjectID: idStr(im.ID),
			MerchantCode: im.MerchantCode, Detail: truncate(f.Name+" refused: "+reason.EN, 500)})
	})
	if werr != nil {
		return res, fmt.Errorf("ledger: the file was refused (%s) and recording the refusal failed: %w", reason.EN, werr)
	}
	return ImportResult{ImportID: im.ID, Refused: true, Reason: reason}, nil
}

// ListImports returns the latest imports of the accounts in scope.
func (s *Store) ListImports(scope Scope, accountID uint64, limit int) ([]Import, error) {
	if limit <= 0 || limit > 200 {
		limit = 50
	}
	q := s.DB.Scopes(scope.Filter("merchant_code"))
	if accountID != 0 {
		q = q.Where("account_id = ?", accountID)
	}
	var out []Import
	if err := q.Order("id DESC").Limit(limit).Find(&out).Error; err != nil {
		return nil, fmt.Errorf("ledger: unable to list imports: %w", err)
	}
	return out, nil
}
