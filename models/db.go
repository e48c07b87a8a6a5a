// Package models holds PayFuse's GORM entities, its versioned migrations and
// the store: every query the console runs goes through a Store method.
package models

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	sqlitedrv "github.com/glebarez/go-sqlite"
	"github.com/glebarez/sqlite"
	mysqldrv "github.com/go-sql-driver/mysql"
	"gorm.io/driver/mysql"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// Dialect names the database engine behind a Store.
type Dialect string

// The engines PayFuse runs on. TiDB speaks the MySQL dialect.
const (
	SQLite Dialect = "sqlite"
	MySQL  Dialect = "mysql"
)

// Network timeouts of a MySQL connection, unless the --db URL sets its own
// (`?timeout=2s&readTimeout=0&writeTimeout=1m`, 0 for none). A database
// that stops refuses or drops connections, which fails at once; these bound
// the cases where it goes silent instead. The dial timeout keeps a page
// under 2 s when the server's host is unreachable. The read timeout must
// outlast the longest legitimate wait for an answer: a starting server
// waits up to 120 s for another's migration lock, InnoDB waits 50 s for a
// row lock. Give readTimeout=0 to `payfuse migrate` when a migration
// rebuilds a very large table.
const (
	DefaultDialTimeout  = time.Second
	DefaultReadTimeout  = 150 * time.Second
	DefaultWriteTimeout = 30 * time.Second
)

// DSN is a parsed --db value: `sqlite:PATH` or `mysql://USER[:PASS]@HOST:PORT/DBNAME[?params]`.
type DSN struct {
	Dialect Dialect
	Path    string // SQLite file path
	MySQL   *mysqldrv.Config
}

// ParseDSN turns the user-facing --db value into a driver configuration.
func ParseDSN(s string) (DSN, error) {
	switch {
	case strings.HasPrefix(s, "sqlite:"):
		p := strings.TrimPrefix(s, "sqlite:")
		p = strings.TrimPrefix(p, "//")
		if p == "" {
			return DSN{}, errors.New("--db sqlite: needs a file path, e.g. sqlite:payfuse.db")
		}
		return DSN{Dialect: SQLite, Path: p}, nil
	case strings.HasPrefix(s, "mysql://"):
		u, err := url.Parse(s)
		if err != nil {
			return DSN{}, fmt.Errorf("--db: not a valid mysql:// URL: %v", redactURLError(err))
		}
		cfg := mysqldrv.NewConfig()
		if u.User != nil {
			cfg.User = u.User.Username()
			cfg.Passwd, _ = u.User.Password()
		}
		host := u.Host
		if host == "" {
			return DSN{}, errors.New("--db: mysql:// URL needs HOST:PORT")
		}
		if !strings.Contains(host, ":") {
			host += ":3306"
		}
		cfg.Net, cfg.Addr = "tcp", host
		cfg.DBName = strings.TrimPrefix(u.Path, "/")
		if cfg.DBName == "" || strings.Contains(cfg.DBName, "/") {
			return DSN{}, errors.New("--db: mysql:// URL needs a database name, e.g. mysql://root@127.0.0.1:3306/payfuse")
		}
		cfg.ParseTime = true
		cfg.Loc = time.UTC
		cfg.Params = map[string]string{"charset": "utf8mb4"}
		cfg.Collation = "utf8mb4_unicode_ci"
		cfg.Params["time_zone"] = "'+00:00'"
		cfg.Timeout, cfg.ReadTimeout, cfg.WriteTimeout = DefaultDialTimeout, DefaultReadTimeout, DefaultWriteTimeout
		for k, vs := range u.Query() {
			if len(vs) == 0 {
				continue
			}
			v := vs[len(vs)-1]
			var d *time.Duration
			switch k {
			case "timeout":
				d = &cfg.Timeout
			case "readTimeout":
				d = &cfg.ReadTimeout
			case "writeTimeout":
				d = &cfg.WriteTimeout
			default:
				cfg.Params[k] = v
				continue
			}
			if v == "0" {
				*d = 0 // no limit
			} else if *d, err = time.ParseDuration(v); err != nil || *d < 0 {
				return DSN{}, fmt.Errorf("--db: %s=%q: want a duration such as 2s or 1m, or 0 for none", k, v)
			}
		}
		return DSN{Dialect: MySQL, MySQL: cfg}, nil
	default:
		return DSN{}, fmt.Errorf("--db %q: expected sqlite:PATH or mysql://USER[:PASS]@HOST:PORT/DBNAME", redactDSN(s))
	}
}

// String shows the DSN without its password, for logs and messages.
func (d DSN) String() string {
	if d.Dialect == SQLite {
		return "sqlite:" + d.Path
	}
	return fmt.Sprintf("mysql://%s@%s/%s", d.MySQL.User, d.MySQL.Addr, d.MySQL.DBName)
}

// redactDSN hides a password in a DSN that failed to parse.
func redactDSN(s string) string {
	if i := strings.Index(s, "@"); i > 0 {
		if j := strings.Index(s, "://"); j >= 0 && j < i {
			if k := strings.Index(s[j+3:i], ":"); k >= 0 {
				return s[:j+3+k] + ":***" + s[i:]
			}
		}
	}
	return s
}

func redactURLError(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return "malformed URL"
}

// Open connects to the database named by dsn. It does not migrate.
func Open(dsn DSN) (*gorm.DB, error) {
	cfg := &gorm.Config{
		TranslateError: true,
		Logger:         logger.Discard,
		NowFunc:        func() time.Time { return time.Now().UTC() },
	}
	switch dsn.Dialect {
	case SQLite:
		if dir := filepath.Dir(dsn.Path); dir != "." {
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return nil, fmt.Errorf("models: unable to create database folder: %w", err)
			}
		}
		// busy_timeout first so the other pragmas wait for a lock rather than fail;
		// immediate transactions take the write lock up front, which avoids
		// deadlocked read-to-write upgrades between concurrent requests.
		//
		// No _time_format: glebarez/go-sqlite v1.23.0 stops reading the DSN's
		// parameters after it, which silently dropped _txlock (and let
		// concurrent writers fail with SQLITE_BUSY). The default format,
		// always in UTC here, sorts correctly as text.
		q := "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)" +
			"&_pragma=synchronous(NORMAL)&_pragma=temp_store(MEMORY)&_pragma=cache_size(-65536)&_txlock=immediate"
		db, err := gorm.Open(sqlite.Open("file:"+dsn.Path+q), cfg)
		if err != nil {
			return nil, fmt.Errorf("models: unable to open %s: %w", dsn, err)
		}
		sqlDB, err := db.DB()
		if err != nil {
			return nil, err
		}
		sqlDB.SetMaxOpenConns(8)
		sqlDB.SetMaxIdleConns(8) // keep them open: a new SQLite connection re-runs the pragmas and parses the schema
		sqlDB.SetConnMaxIdleTime(5 * time.Minute)
		return db, nil
	case MySQL:
		db, err := gorm.Open(mysql.New(mysql.Config{DSNConfig: dsn.MySQL}), cfg)
		if err != nil {
			return nil, fmt.Errorf("models: unable to open %s: %w", dsn, err)
		}
		sqlDB, err := db.DB()
		if err != nil {
			return nil, err
		}
		sqlDB.SetMaxOpenConns(32)
		sqlDB.SetMaxIdleConns(32)
		sqlDB.SetConnMaxLifetime(30 * time.Minute)
		return db, nil
	}
	return nil, fmt.Errorf("models: unknown dialect %q", dsn.Dialect)
}

// IsBusy reports whether err is the database refusing a write because
// another transaction holds the lock past the wait (SQLite's busy timeout,
// MySQL's lock wait timeout): nothing was changed, and trying again later
// will work. On SQLite a large statement import holds the one write lock for
// its whole length, so the ledger never shows half a file.
func IsBusy(err error) bool {
	var se *sqlitedrv.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case 5, 6: // SQLITE_BUSY, SQLITE_LOCKED
			return true
		}
	}
	var me *mysqldrv.MySQLError
	return errors.As(err, &me) && me.Number == 1205 // ER_LOCK_WAIT_TIMEOUT
}
