package models

// The schema is kept TiDB-compatible (DESIGN.md). There is no TiDB on this
// machine, so these tests check, on MariaDB and in the source, the things
// TiDB's documentation says it does not do; docs/SCALING.md cites each.

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"gorm.io/driver/mysql"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// tidbCollations are the utf8mb4/utf8/ascii/latin1/binary/gbk collations
// TiDB has with its new collation framework (the default for new clusters;
// SHOW COLLATION in TiDB's reference).
var tidbCollations = []string{
	"utf8mb4_bin", "utf8mb4_general_ci", "utf8mb4_unicode_ci", "utf8mb4_0900_ai_ci", "utf8mb4_0900_bin",
	"utf8_bin", "utf8_general_ci", "utf8_unicode_ci", "ascii_bin", "latin1_bin", "binary", "gbk_bin", "gbk_chinese_ci",
}

// tidbTypes are the column types PayFuse may use: all exist in TiDB. Anything
// else (the spatial types TiDB lacks, MariaDB's own INET4/INET6/UUID) is
// refused until someone checks TiDB's data type reference and adds it.
var tidbTypes = []string{
	"tinyint", "smallint", "mediumint", "int", "bigint", "decimal", "double", "float",
	"char", "varchar", "binary", "varbinary", "tinytext", "text", "mediumtext", "longtext",
	"tinyblob", "blob", "mediumblob", "longblob", "date", "datetime", "timestamp", "time", "year", "enum", "set", "json",
}

// tidbMaxIndexBytes is TiDB's default max-index-length (3072 bytes).
const tidbMaxIndexBytes = 3072

// tidbReserved are TiDB's reserved keywords, (R) and (R-Window), from its
// keyword reference. A table or column with such a name must be quoted in
// every statement; GORM quotes the names it writes, hand-written SQL must too.
var tidbReserved = strings.Fields(`ADD ALL ALTER ANALYZE AND ARRAY AS ASC BETWEEN BIGINT BINARY BLOB BOTH BY CALL CASCADE CASE CHANGE
CHAR CHARACTER CHECK COLLATE COLUMN CONSTRAINT CONTINUE CONVERT CREATE CROSS CUME_DIST CURRENT_DATE CURRENT_ROLE
CURRENT_TIME CURRENT_TIMESTAMP CURRENT_USER CURSOR DATABASE DATABASES DAY_HOUR DAY_MICROSECOND DAY_MINUTE DAY_SECOND
DECIMAL DEFAULT DELAYED DELETE DENSE_RANK DESC DESCRIBE DISTINCT DISTINCTROW DIV DOUBLE DROP DUAL ELSE ELSEIF ENCLOSED
ESCAPED EXCEPT EXISTS EXIT EXPLAIN FALSE FETCH FIRST_VALUE FLOAT FLOAT4 FLOAT8 FOR FORCE FOREIGN FROM FULLTEXT GENERATED
GRANT GROUP GROUPS HAVING HIGH_PRIORITY HOUR_MICROSECOND HOUR_MINUTE HOUR_SECOND IF IGNORE ILIKE IN INDEX INFILE INNER
INOUT INSERT INT INT1 INT2 INT3 INT4 INT8 INTEGER INTERSECT INTERVAL INTO IS ITERATE JOIN KEY KEYS KILL LAG LAST_VALUE
LEAD LEADING LEAVE LEFT LIKE LIMIT LINEAR LINES LOAD LOCALTIME LOCALTIMESTAMP LOCK LONG LONGBLOB LONGTEXT LOW_PRIORITY
MATCH MAXVALUE MEDIUMBLOB MEDIUMINT MEDIUMTEXT MIDDLEINT MINUTE_MICROSECOND MINUTE_SECOND MOD NATURAL NOT
NO_WRITE_TO_BINLOG NTH_VALUE NTILE NULL NUMERIC OF ON OPTIMIZE OPTION OPTIONALLY OR ORDER OUT OUTER OUTFILE OVER
PARTITION PERCENT_RANK PRECISION PRIMARY PROCEDURE RANGE RANK READ REAL RECURSIVE REFERENCES REGEXP RELEASE RENAME
REPEAT REPLACE REQUIRE RESTRICT REVOKE RIGHT RLIKE ROW ROW_NUMBER ROWS SECOND_MICROSECOND SELECT SET SHOW SMALLINT
SPATIAL SQL SQL_BIG_RESULT SQL_CALC_FOUND_ROWS SQL_SMALL_RESULT SQLEXCEPTION SQLSTATE SQLWARNING SSL STARTING STORED
STRAIGHT_JOIN TABLE TABLESAMPLE TERMINATED THEN TIDB_CURRENT_TSO TINYBLOB TINYINT TINYTEXT TO TRAILING TRIGGER TRUE
UNION UNIQUE UNLOCK UNSIGNED UNTIL UPDATE USAGE USE USING UTC_DATE UTC_TIME UTC_TIMESTAMP VALUES VARBINARY VARCHAR
VARCHARACTER VARYING VIRTUAL WHEN WHERE WHILE WINDOW WITH WRITE XOR YEAR_MONTH ZEROFILL`)

// hotInsertTables grow with traffic (a row or more per payment, notification
// or API write). On TiDB an AUTO_INCREMENT primary key sends all their
// inserts to the last Region of the table: docs/SCALING.md gives the fix.
var hotInsertTables = []string{"transactions", "transaction_sources", "notify_nonces", "notify_refusals",
	"idempotency_keys", "webhook_deliveries", "audit_logs"}

func skipWithoutMySQL(t *testing.T) {
	t.Helper()
	if os.Getenv(TestMySQLEnv) == "" {
		t.Skip("TiDB compatibility is checked on a MySQL-dialect server: set PAYFUSE_TEST_MYSQL=mysql://root@127.0.0.1:3306/payfuse_test (MariaDB here) to run it")
	}
}

// TestTiDBSchemaCompatibility migrates a fresh database and refuses every
// schema feature TiDB's documentation lists as unsupported (or ignores):
// FULLTEXT and SPATIAL indexes and types, descending indexes, CHECK
// constraints (off by default in TiDB), foreign keys, triggers, stored
// routines, events, views, partitions, other engines, ZEROFILL, MariaDB-only
// column types and attributes, collations TiDB lacks, indexes longer than its
// 3072-byte limit, reserved words used as names or left unquoted. It logs the
// auto-increment keys of the tables that grow with traffic: they work on TiDB
// but are a write hot spot there. A probe database with one of each refused
// feature proves that every check fires.
func TestTiDBSchemaCompatibility(t *testing.T) {
	skipWithoutMySQL(t)
	s := OpenTest(t)
	problems, notes := tidbSchemaProblems(t, s, sqlLiterals(t))
	for _, n := range notes {
		t.Log("note: " + n)
	}
	for _, p := range problems {
		t.Error(p)
	}

	probe := freshDatabase(t)
	db, err := Open(probe)
	if err != nil {
		t.Fatal(err)
	}
	ps := NewStore(db, probe.Dialect)
	defer ps.Close()
	for _, ddl := range []string{
		"CREATE TABLE p_fulltext (id BIGINT PRIMARY KEY, body TEXT, FULLTEXT KEY ft (body)) ENGINE=InnoDB",
		"CREATE TABLE p_spatial (id BIGINT PRIMARY KEY, pos POINT NOT NULL, SPATIAL KEY sp (pos)) ENGINE=InnoDB",
		"CREATE TABLE p_check (id BIGINT PRIMARY KEY, n INT CHECK (n > 0), addr INET6, z INT(4) ZEROFILL) ENGINE=InnoDB",
		"CREATE TABLE p_fk (id BIGINT PRIMARY KEY, check_id BIGINT, FOREIGN KEY (check_id) REFERENCES p_check (id)) ENGINE=InnoDB",
		"CREATE TABLE p_memory (id BIGINT PRIMARY KEY, `rows` INT) ENGINE=MEMORY",
		"CREATE TABLE p_nopk (name VARCHAR(2048), KEY ix_name (name(100))) ENGINE=InnoDB",
		"CREATE TABLE p_part (id BIGINT PRIMARY KEY) ENGINE=InnoDB PARTITION BY HASH (id) PARTITIONS 2",
		"CREATE TABLE p_collate (id BIGINT PRIMARY KEY, name VARCHAR(10) COLLATE utf8mb4_swedish_ci) ENGINE=InnoDB",
		"CREATE VIEW p_view AS SELECT id FROM p_check",
		"CREATE TRIGGER p_trigger BEFORE INSERT ON p_check FOR EACH ROW SET NEW.n = 1",
		"CREATE PROCEDURE p_proc() SELECT 1",
		"CREATE EVENT p_event ON SCHEDULE EVERY 1 DAY DO SELECT 1",
	} {
		if err := ps.DB.Exec(ddl).Error; err != nil {
			t.Fatalf("probe %q: %v", ddl, err)
		}
	}
	// (Index length is not probed: MariaDB refuses keys over 3072 bytes too.)
	unquoted := []sqlLiteral{{pos: "probe.go:1", text: "SELECT id FROM p_memory WHERE rows > ?"}}
	problems, _ = tidbSchemaProblems(t, ps, unquoted)
	all := strings.Join(problems, "\n")
	for _, want := range []string{
		"triggers", "stored procedures", "events", "views", "foreign keys", "CHECK constraints", "partitioned tables",
		"FULLTEXT or SPATIAL indexes", "engine MEMORY", "p_nopk has no primary key",
		"p_spatial.pos has type point", "p_check.addr has type inet6", "ZEROFILL", "collation utf8mb4_swedish_ci",
		"uses the column rows unquoted",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("the probe's %q was not found; the check reported:\n%s", want, all)
		}
	}
}

// tidbSchemaProblems reads the schema of s's database and returns what TiDB
// would refuse or ignore (problems) and what works but needs care (notes).
// sql are the hand-written statements that must quote reserved column names.
func tidbSchemaProblems(t *testing.T, s *Store, sql []sqlLiteral) (problems, notes []string) {
	t.Helper()
	fail := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	var db string
	if err := s.DB.Raw("SELECT DATABASE()").Scan(&db).Error; err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ what, query string }{
		{"triggers", "SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ?"},
		{"stored procedures and functions", "SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ?"},
		{"events", "SELECT COUNT(*) FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ?"},
		{"views (not updatable in TiDB)", "SELECT COUNT(*) FROM information_schema.VIEWS WHERE TABLE_SCHEMA = ?"},
		{"foreign keys", "SELECT COUNT(*) FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = ?"},
		{"CHECK constraints (TiDB ignores them unless tidb_enable_check_constraint is on)", "SELECT COUNT(*) FROM information_schema.CHECK_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = ?"},
		{"partitioned tables", "SELECT COUNT(DISTINCT TABLE_NAME) FROM information_schema.PARTITIONS WHERE TABLE_SCHEMA = ? AND PARTITION_NAME IS NOT NULL"},
		{"FULLTEXT or SPATIAL indexes", "SELECT COUNT(*) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? AND INDEX_TYPE IN ('FULLTEXT', 'SPATIAL')"},
		{"hash indexes (MariaDB's long unique keys; TiDB has none)", "SELECT COUNT(*) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? AND INDEX_TYPE = 'HASH'"},
	} {
		var n int64
		if err := s.DB.Raw(c.query, db).Scan(&n).Error; err != nil {
			t.Fatalf("%s: %v", c.what, err)
		}
		if n != 0 {
			fail("%d %s in the schema", n, c.what)
		}
	}
	// Descending index columns are not refused: TiDB builds such an index
	// ascending (as MySQL 5.7 did) and reads it in reverse for the same
	// order. The ledger's walk indexes are DESC for MariaDB's sake.
	var desc int64
	if err := s.DB.Raw("SELECT COUNT(*) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? AND COLLATION = 'D'", db).Scan(&desc).Error; err != nil {
		t.Fatal(err)
	}
	if desc > 0 {
		notes = append(notes, fmt.Sprintf("%d descending index columns: TiDB builds them ascending and scans in reverse (same order, same rows)", desc))
	}

	var tables []struct {
		Name, Engine, Type string
	}
	if err := s.DB.Raw(`SELECT TABLE_NAME AS name, COALESCE(ENGINE, '') AS engine, TABLE_TYPE AS type
		FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME`, db).Scan(&tables).Error; err != nil {
		t.Fatal(err)
	}
	createRE := []struct {
		re   *regexp.Regexp
		what string
	}{
		{regexp.MustCompile(`(?i)\bFULLTEXT\b`), "a FULLTEXT index"},
		{regexp.MustCompile(`(?i)\bSPATIAL\b`), "a SPATIAL index"},
		{regexp.MustCompile(`(?i)\bFOREIGN KEY\b`), "a foreign key"},
		{regexp.MustCompile(`(?i)\bCHECK\s*\(`), "a CHECK constraint"},
		{regexp.MustCompile(`(?i)\bPARTITION BY\b`), "partitioning"},
		{regexp.MustCompile(`(?i)\bZEROFILL\b`), "ZEROFILL"},
		{regexp.MustCompile(`(?i)\b(float|double)\(\d+,\d+\)`), "a floating-point type with a precision"},
		{regexp.MustCompile(`(?i)\bWITH SYSTEM VERSIONING\b|\bPERIOD FOR\b`), "MariaDB system versioning or periods"},
		{regexp.MustCompile(`(?i)\bCOMPRESSED\b`), "MariaDB column or row compression"},
		{regexp.MustCompile(`(?i)\b(GENERATED ALWAYS|PERSISTENT|VIRTUAL)\b`), "a generated column (check TiDB's limits first)"},
	}
	for _, tb := range tables {
		if tb.Type != "BASE TABLE" {
			continue // views are counted above
		}
		if !strings.EqualFold(tb.Engine, "InnoDB") {
			fail("%s uses engine %s: TiDB ignores engines (a MEMORY table would silently be stored)", tb.Name, tb.Engine)
		}
		if len(tb.Name) > 64 {
			fail("table name %s is longer than 64 characters", tb.Name)
		}
		if slices.Contains(tidbReserved, strings.ToUpper(tb.Name)) {
			fail("table %s is a reserved word in TiDB", tb.Name)
		}
		var name, ddl string
		if err := s.DB.Raw("SHOW CREATE TABLE `"+tb.Name+"`").Row().Scan(&name, &ddl); err != nil {
			t.Fatalf("SHOW CREATE TABLE %s: %v", tb.Name, err)
		}
		for _, c := range createRE {
			if m := c.re.FindString(ddl); m != "" {
				fail("%s has %s (%q): TiDB does not support it", tb.Name, c.what, m)
			}
		}
		if !strings.Contains(ddl, "PRIMARY KEY") {
			fail("%s has no primary key: TiDB would number its rows with a hidden _tidb_rowid (a hot spot, and invisible to the application)", tb.Name)
		}
	}

	var cols []struct {
		Table, Column, DataType, ColumnType, Extra, Charset, Collation, ColumnKey string
	}
	if err := s.DB.Raw(`SELECT c.TABLE_NAME AS `+"`table`"+`, c.COLUMN_NAME AS `+"`column`"+`, c.DATA_TYPE AS data_type,
		c.COLUMN_TYPE AS column_type, c.EXTRA AS extra, COALESCE(c.CHARACTER_SET_NAME, '') AS charset,
		COALESCE(c.COLLATION_NAME, '') AS collation, c.COLUMN_KEY AS column_key
		FROM information_schema.COLUMNS c JOIN information_schema.TABLES tb
		  ON tb.TABLE_SCHEMA = c.TABLE_SCHEMA AND tb.TABLE_NAME = c.TABLE_NAME AND tb.TABLE_TYPE = 'BASE TABLE'
		WHERE c.TABLE_SCHEMA = ? ORDER BY c.TABLE_NAME, c.ORDINAL_POSITION`, db).Scan(&cols).Error; err != nil {
		t.Fatal(err)
	}
	quotedOnly := map[string]bool{} // reserved column names: every hand-written statement must quote them
	var autoInc []string
	for _, c := range cols {
		where := c.Table + "." + c.Column
		if !slices.Contains(tidbTypes, strings.ToLower(c.DataType)) {
			fail("%s has type %s, which TiDB does not have (or nobody checked: see TiDB's data type reference)", where, c.ColumnType)
		}
		if strings.Contains(strings.ToLower(c.ColumnType), "zerofill") {
			fail("%s is ZEROFILL", where)
		}
		if c.Charset != "" && !slices.Contains([]string{"utf8mb4", "utf8", "utf8mb3", "ascii", "latin1", "binary", "gbk"}, c.Charset) {
			fail("%s has character set %s, which TiDB does not support", where, c.Charset)
		}
		if c.Collation != "" && !slices.Contains(tidbCollations, c.Collation) {
			fail("%s has collation %s, which TiDB does not have", where, c.Collation)
		}
		extra := strings.ToUpper(c.Extra)
		if strings.Contains(extra, "INVISIBLE") {
			fail("%s is an invisible column (MariaDB only)", where)
		}
		if strings.Contains(extra, "GENERATED") || strings.Contains(extra, "VIRTUAL") || strings.Contains(extra, "PERSISTENT") {
			fail("%s is a generated column: check TiDB's generated-column limits before adding one", where)
		}
		if slices.Contains(tidbReserved, strings.ToUpper(c.Column)) {
			quotedOnly[c.Column] = true
			notes = append(notes, fmt.Sprintf("column %s is a reserved word in TiDB (and MySQL 8.0): every statement must quote it (checked)", where))
		}
		if strings.Contains(extra, "AUTO_INCREMENT") {
			if c.ColumnKey != "PRI" || c.DataType != "bigint" {
				fail("%s is AUTO_INCREMENT %s (key %q): the TiDB fix for hot spots, AUTO_RANDOM, needs a BIGINT primary key", where, c.ColumnType, c.ColumnKey)
			}
			if slices.Contains(hotInsertTables, c.Table) {
				autoInc = append(autoInc, c.Table)
			}
		}
		switch c.DataType {
		case "mediumtext", "longtext", "mediumblob", "longblob":
			notes = append(notes, fmt.Sprintf("%s is %s: TiDB refuses a row over txn-entry-size-limit (6 MiB by default)", where, c.ColumnType))
		}
	}
	if len(autoInc) > 0 {
		notes = append(notes, "AUTO_INCREMENT primary keys on tables that grow with traffic (a TiDB write hot spot; the AUTO_RANDOM fix is in docs/SCALING.md): "+strings.Join(autoInc, ", "))
	}

	// Index length: TiDB refuses keys over max-index-length (3072 bytes by default).
	var parts []struct {
		Table, Index, Column, DataType string
		SubPart, Octets                *int64
	}
	if err := s.DB.Raw(`SELECT st.TABLE_NAME AS `+"`table`"+`, st.INDEX_NAME AS `+"`index`"+`, st.COLUMN_NAME AS `+"`column`"+`,
		c.DATA_TYPE AS data_type, st.SUB_PART AS sub_part, c.CHARACTER_OCTET_LENGTH AS octets
		FROM information_schema.STATISTICS st JOIN information_schema.COLUMNS c
		  ON c.TABLE_SCHEMA = st.TABLE_SCHEMA AND c.TABLE_NAME = st.TABLE_NAME AND c.COLUMN_NAME = st.COLUMN_NAME
		WHERE st.TABLE_SCHEMA = ? AND st.INDEX_TYPE = 'BTREE' ORDER BY st.TABLE_NAME, st.INDEX_NAME, st.SEQ_IN_INDEX`, db).Scan(&parts).Error; err != nil {
		t.Fatal(err)
	}
	fixed := map[string]int64{"tinyint": 1, "smallint": 2, "mediumint": 3, "int": 4, "bigint": 8, "float": 4, "double": 8,
		"decimal": 16, "date": 3, "time": 6, "datetime": 8, "timestamp": 7, "year": 1}
	length := map[string]int64{}
	columns := map[string]int{}
	for _, p := range parts {
		key := p.Table + "." + p.Index
		if columns[key]++; columns[key] == 17 {
			fail("index %s has more than 16 columns, TiDB's limit", key)
		}
		if len(p.Index) > 64 {
			fail("index name %s is longer than 64 characters", key)
		}
		switch {
		case p.SubPart != nil:
			length[key] += *p.SubPart * 4 // utf8mb4: up to 4 bytes a character
		case p.Octets != nil:
			length[key] += *p.Octets
		default:
			n, ok := fixed[p.DataType]
			if !ok {
				fail("index %s covers %s of type %s, whose key length this test does not know", key, p.Column, p.DataType)
			}
			length[key] += n
		}
	}
	for key, n := range length {
		if n > tidbMaxIndexBytes {
			fail("index %s is %d bytes long: over TiDB's max-index-length of %d", key, n, tidbMaxIndexBytes)
		}
	}

	// Reserved column names in hand-written SQL must be quoted.
	for name := range quotedOnly {
		re := regexp.MustCompile(`(?i)(^|[^` + "`" + `A-Za-z0-9_.])` + regexp.QuoteMeta(name) + `($|[^` + "`" + `A-Za-z0-9_])`)
		for _, lit := range sql {
			if re.MatchString(lit.text) {
				fail("%s: %q uses the column %s unquoted, a reserved word in TiDB", lit.pos, clipSQL(lit.text), name)
			}
		}
	}
	sort.Strings(problems)
	sort.Strings(notes)
	return problems, notes
}

// sqlLiteral is a string literal in the Go source that reads as SQL.
type sqlLiteral struct {
	pos  string
	text string
}

var (
	sqlLiteralsOnce sync.Once
	sqlLiteralsList []sqlLiteral
	sqlLiteralsErr  error
	// looksLikeSQL: an upper-case SQL word, an upper-case call, or a placeholder comparison.
	looksLikeSQL = regexp.MustCompile(`\b[A-Z][A-Z0-9_]{2,}\(|\b(SELECT|UPDATE|INSERT|DELETE|WHERE|FROM|VALUES|SET|AND|OR|CASE|WHEN|IN|IS|NULL|BETWEEN|ORDER|GROUP|JOIN|ON|AS|DISTINCT|INDEX|LIKE|COUNT|SUM|MAX|MIN|COALESCE|PRAGMA|VACUUM|LOCK|SHARE|FOR)\b|[=<>] \?|\?\)`)
)

// sqlLiterals returns every string literal of the program's own packages
// (not tests, not generated views, not the channel parsers, which hold no
// SQL) that looks like SQL.
func sqlLiterals(t *testing.T) []sqlLiteral {
	t.Helper()
	sqlLiteralsOnce.Do(func() {
		root, err := filepath.Abs("..")
		if err != nil {
			sqlLiteralsErr = err
			return
		}
		sqlLiteralsErr = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				switch d.Name() {
				case "node_modules", "static", "views", "channels", "docs", ".git", "testdata":
					return filepath.SkipDir
				}
				return nil
			}
			if !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") || strings.HasSuffix(p, "_templ.go") {
				return nil
			}
			fset := token.NewFileSet()
			f, err := parser.ParseFile(fset, p, nil, 0)
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(root, p)
			ast.Inspect(f, func(n ast.Node) bool {
				bl, ok := n.(*ast.BasicLit)
				if !ok || bl.Kind != token.STRING {
					return true
				}
				s, err := strconv.Unquote(bl.Value)
				if err == nil && looksLikeSQL.MatchString(s) {
					pos := fset.Position(bl.Pos())
					sqlLiteralsList = append(sqlLiteralsList, sqlLiteral{pos: fmt.Sprintf("%s:%d", rel, pos.Line), text: s})
				}
				return true
			})
			return nil
		})
	})
	if sqlLiteralsErr != nil {
		t.Fatalf("reading the Go source: %v", sqlLiteralsErr)
	}
	if len(sqlLiteralsList) < 50 {
		t.Fatalf("found only %d SQL strings in the source: the scan is broken", len(sqlLiteralsList))
	}
	return sqlLiteralsList
}

func clipSQL(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 90 {
		return s[:90] + "…"
	}
	return s
}

// tidbFunctions are the SQL functions PayFuse's statements call on MySQL,
// each found in TiDB's function reference (the page in the value).
var tidbFunctions = map[string]string{
	"COUNT": "aggregate-group-by-functions", "SUM": "aggregate-group-by-functions",
	"MAX": "aggregate-group-by-functions", "MIN": "aggregate-group-by-functions",
	"COALESCE": "operators (comparison functions)", "CAST": "cast-functions-and-operators",
	"CONCAT": "string-functions", "LEFT": "string-functions",
	"DATE_FORMAT": "date-and-time-functions", "TIMESTAMPDIFF": "date-and-time-functions",
	"DATABASE": "information-functions", "VERSION": "information-functions", "VALUES": "miscellaneous-functions",
	"GET_LOCK": "locking-functions (documented from v6.1 on)", "RELEASE_LOCK": "locking-functions",
}

// sqliteOnlyFunctions appear only in statements built for SQLite (the
// MySQL branch next to them uses the functions above); the suite on
// MariaDB proves the MySQL branch is the one that runs there.
var sqliteOnlyFunctions = []string{"STRFTIME", "JULIANDAY", "UNIXEPOCH", "PRINTF"}

// sqlWords are keywords written before a parenthesis, not function calls.
var sqlWords = []string{"IN", "VALUES", "AS", "ON", "AND", "OR", "NOT", "EXISTS", "INTO", "USING", "WHERE", "INDEX", "KEY", "JOIN", "THEN", "ELSE", "WHEN", "CASE", "SELECT", "FROM", "CONFLICT"}

// tidbUnsupportedSyntax is statement syntax TiDB's documentation says it
// lacks, ignores or treats differently enough to break an assumption.
var tidbUnsupportedSyntax = []struct {
	re  *regexp.Regexp
	why string
}{
	{regexp.MustCompile(`(?i)LOCK\s+IN\s+SHARE\s+MODE|FOR\s+SHARE`), "TiDB parses shared locks but takes none"},
	{regexp.MustCompile(`(?i)SKIP\s+LOCKED`), "SKIP LOCKED is unsupported"},
	{regexp.MustCompile(`(?i)SQL_CALC_FOUND_ROWS|FOUND_ROWS\(`), "SQL_CALC_FOUND_ROWS is unsupported"},
	{regexp.MustCompile(`(?i)\bINTO\s+@`), "SELECT … INTO @variable is unsupported"},
	{regexp.MustCompile(`(?i)\bMATCH\s*\(.*\bAGAINST\b|\bFULLTEXT\b`), "full-text search is unsupported"},
	{regexp.MustCompile(`(?i)\bXA\s+(START|BEGIN|END|PREPARE|COMMIT|ROLLBACK|RECOVER)\b`), "XA is unsupported"},
	{regexp.MustCompile(`(?i)CREATE\s+TABLE\s+\S+\s+AS\s+SELECT`), "CREATE TABLE … AS SELECT is unsupported"},
	{regexp.MustCompile(`(?i)\bCHECK(SUM)?\s+TABLE\b|\bREPAIR\s+TABLE\b|\bOPTIMIZE\s+TABLE\b|\bHANDLER\s+\w+\s+(OPEN|READ)`), "table maintenance statements are unsupported"},
	{regexp.MustCompile(`(?i)CREATE\s+(DEFINER\s*=\s*\S+\s+)?(TRIGGER|PROCEDURE|FUNCTION|EVENT)\b`), "triggers, stored routines and events are unsupported"},
	{regexp.MustCompile(`(?i)\bST_[A-Z]+\(|\bGEOMETRY\b|\bPOINT\(`), "spatial functions and types are unsupported"},
	{regexp.MustCompile(`(?i)\bUUID_SHORT\(|\bEXTRACTVALUE\(|\bUPDATEXML\(`), "a function TiDB lacks"},
	{regexp.MustCompile(`(?i)\bIS_(FREE|USED)_LOCK\(`), "missing from TiDB before v7.x"},
}

// TestTiDBCompatibleSQL scans the program's SQL strings for functions that
// are not on the checked list and for syntax TiDB lacks. It runs without a
// server: the source is the same on every machine. Planted samples prove
// each check fires.
func TestTiDBCompatibleSQL(t *testing.T) {
	planted := []sqlLiteral{
		{"planted.go:1", "SELECT SOUNDEX(name) FROM users WHERE id = ?"},
		{"planted.go:2", "SELECT * FROM flows WHERE id = ? LOCK IN SHARE MODE"},
		{"planted.go:3", "SELECT id FROM flow_runs WHERE status = ? FOR UPDATE SKIP LOCKED"},
		{"planted.go:4", "SELECT SQL_CALC_FOUND_ROWS id FROM transactions WHERE amount > ?"},
		{"planted.go:5", "SELECT id FROM transactions WHERE MATCH(channel_ref) AGAINST (?)"},
		{"planted.go:6", "SELECT ST_Distance(a, b) FROM places WHERE id = ?"},
	}
	problems, _ := checkSQLLiterals(planted)
	for i, want := range []string{"SOUNDEX()", "takes none", "SKIP LOCKED", "SQL_CALC_FOUND_ROWS", "full-text", "spatial"} {
		if !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, want) }) {
			t.Errorf("planted sample %d (%s) was not caught: %v", i+1, want, problems)
		}
	}

	lits := sqlLiterals(t)
	problems, used := checkSQLLiterals(lits)
	for _, p := range problems {
		t.Error(p)
	}
	var names []string
	for fn, n := range used {
		names = append(names, fmt.Sprintf("%s×%d", fn, n))
	}
	sort.Strings(names)
	t.Logf("%d SQL strings scanned; functions called: %s", len(lits), strings.Join(names, ", "))
	if used["GET_LOCK"] == 0 {
		t.Errorf("the migration lock no longer uses GET_LOCK: update docs/SCALING.md")
	}
}

// checkSQLLiterals returns what in lits TiDB would refuse, and how often
// each function is called.
func checkSQLLiterals(lits []sqlLiteral) (problems []string, used map[string]int) {
	call := regexp.MustCompile(`\b([A-Za-z_][A-Za-z0-9_]*)\(`)
	used = map[string]int{}
	for _, lit := range lits {
		for _, ix := range call.FindAllStringSubmatchIndex(lit.text, -1) {
			if ix[0] > 0 && strings.ContainsRune("%.", rune(lit.text[ix[0]-1])) {
				continue // a format verb or a qualified name, not a call
			}
			name := lit.text[ix[2]:ix[3]]
			fn := strings.ToUpper(name)
			switch {
			case slices.Contains(sqlWords, fn):
			case slices.Contains(sqliteOnlyFunctions, fn):
				used[fn+" (SQLite only)"]++
			case tidbFunctions[fn] != "":
				used[fn]++
			default:
				problems = append(problems, fmt.Sprintf("%s: %q calls %s(), which nobody has checked against TiDB's function reference; check it and add it to tidbFunctions",
					lit.pos, clipSQL(lit.text), name))
			}
		}
		for _, u := range tidbUnsupportedSyntax {
			if m := u.re.FindString(lit.text); m != "" {
				problems = append(problems, fmt.Sprintf("%s: %q: %s (%s)", lit.pos, clipSQL(lit.text), m, u.why))
			}
		}
	}
	return problems, used
}

// freshDatabase names an empty database of the test's own (a SQLite file,
// or a new database on the PAYFUSE_TEST_MYSQL server dropped at the end).
func freshDatabase(t *testing.T) DSN {
	t.Helper()
	raw := os.Getenv(TestMySQLEnv)
	if raw == "" {
		return DSN{Dialect: SQLite, Path: filepath.Join(t.TempDir(), "fresh.db")}
	}
	dsn, err := ParseDSN(raw)
	if err != nil || dsn.Dialect != MySQL {
		t.Fatalf("%s=%q: %v", TestMySQLEnv, raw, err)
	}
	server := dsn.MySQL.Clone()
	server.DBName = ""
	admin, err := gorm.Open(mysql.New(mysql.Config{DSNConfig: server}), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatal(err)
	}
	name := dsn.MySQL.DBName + "_fresh_" + RandomPassword(8)
	if err := admin.Exec("CREATE DATABASE `" + name + "` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci").Error; err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		admin.Exec("DROP DATABASE IF EXISTS `" + name + "`")
		if sqlDB, err := admin.DB(); err == nil {
			sqlDB.Close()
		}
	})
	dsn.MySQL = dsn.MySQL.Clone()
	dsn.MySQL.DBName = name
	return dsn
}

// TestConcurrentMigratorsSerialise starts three processes' worth of
// connection pools on one database at once, as three `payfuse serve`
// starting together would, and checks every migration step is applied
// exactly once. "upgrade": the database is one step behind the binary (the
// usual rolling start after an upgrade); on MySQL the migrators wait for each
// other on the GET_LOCK named after the database, on SQLite on the write
// lock of each step's immediate transaction. "fresh": an empty database.
func TestConcurrentMigratorsSerialise(t *testing.T) {
	migrateAll := func(t *testing.T, dsn DSN) []*Store {
		t.Helper()
		var wg sync.WaitGroup
		errs := make([]error, 3)
		var stores []*Store
		for i := range 3 {
			db, err := Open(dsn)
			if err != nil {
				t.Fatal(err)
			}
			s := NewStore(db, dsn.Dialect)
			t.Cleanup(func() { s.Close() })
			stores = append(stores, s)
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = Migrate(db, dsn.Dialect)
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("migrator %d: %v", i+1, err)
			}
		}
		var n int64
		stores[0].DB.Model(&schemaMigration{}).Count(&n)
		if n != int64(len(migrations)) {
			t.Fatalf("%d migration records after three concurrent migrators, want %d", n, len(migrations))
		}
		for i, s := range stores {
			if v, err := s.SchemaVersion(); err != nil || v != LatestVersion() {
				t.Errorf("store %d sees schema version %d (%v), want %d", i+1, v, err, LatestVersion())
			}
		}
		return stores
	}
	t.Run("upgrade", func(t *testing.T) {
		dsn := freshDatabase(t)
		db, err := Open(dsn)
		if err != nil {
			t.Fatal(err)
		}
		if err := Migrate(db, dsn.Dialect); err != nil {
			t.Fatal(err)
		}
		// One step behind: every step is re-runnable, so forgetting the last
		// record is the database of the previous release.
		if err := db.Where("version = ?", LatestVersion()).Delete(&schemaMigration{}).Error; err != nil {
			t.Fatal(err)
		}
		NewStore(db, dsn.Dialect).Close()
		migrateAll(t, dsn)
	})
	t.Run("fresh", func(t *testing.T) {
		dsn := freshDatabase(t)
		migrateAll(t, dsn)
	})
}
