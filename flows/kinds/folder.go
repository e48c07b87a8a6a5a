package kinds

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"payfuse/flows"
	"payfuse/models"
)

// FolderParams are a folder-import flow's settings.
type FolderParams struct {
	// Folder is the drop folder, relative to the configured drop root
	// (Config.DropRoot): a flow cannot name any other place on the server.
	Folder string `json:"folder"`
}

// folderImport imports each file dropped in the flow's folder into its
// channel account, once: a file taken (or already imported) moves to done/,
// a refused one to refused/ with a NAME.reason.txt beside it. Files still
// being written (changed in the last few seconds) wait for the next run.
func (k *kinds) folderImport(ctx context.Context, run *flows.Run) (flows.Counts, error) {
	if k.cfg.DropRoot == "" {
		return flows.Counts{}, flows.Permanent(flows.Fail("folder import is off: start PayFuse with a drop root (--drop-root or PAYFUSE_DROP_ROOT)",
			"文件夹导入未启用：请以 --drop-root（或 PAYFUSE_DROP_ROOT）指定投放根目录启动 PayFuse"))
	}
	var p FolderParams
	if err := run.Params(&p); err != nil {
		return flows.Counts{}, flows.Permanent(flows.Fail("the flow's settings are not valid JSON: %v", "流程设置不是有效的 JSON：%v", err))
	}
	dir, err := DropFolder(k.cfg.DropRoot, p.Folder)
	if err != nil {
		return flows.Counts{}, flows.Permanent(err)
	}
	if run.Flow.AccountID == nil {
		return flows.Counts{}, flows.Permanent(flows.Fail("a folder-import flow needs one channel account: the files of a folder go to it",
			"文件夹导入流程必须指定一个渠道账户：文件夹中的文件将导入该账户"))
	}
	accts, err := k.accounts(run)
	if err != nil {
		return flows.Counts{}, err
	}
	acct := &accts[0]
	entries, err := os.ReadDir(dir)
	if err != nil {
		return flows.Counts{}, flows.Fail("the drop folder %s cannot be read: %v", "无法读取投放文件夹 %s：%v", p.Folder, err)
	}
	var names []string
	for _, e := range entries {
		if e.Type().IsRegular() && !strings.HasPrefix(e.Name(), ".") {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	var c flows.Counts
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return c, err
		}
		path := filepath.Join(dir, name)
		fi, err := os.Stat(path)
		if err != nil || run.Now().Sub(fi.ModTime()) < 5*time.Second {
			continue // being written: the next run takes it
		}
		moved, err := k.importDropped(run, acct, dir, name, &c)
		if err != nil {
			return c, err
		}
		run.Logf("%s → %s", name, moved)
	}
	return c, nil
}

func (k *kinds) importDropped(run *flows.Run, acct *models.ChannelAccount, dir, name string, c *flows.Counts) (string, error) {
	path := filepath.Join(dir, name)
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return "", err
	}
	sf, err := k.s.OpenStatement(acct, name, f, st.Size())
	if err != nil {
		f.Close()
		return "", err
	}
	res, err := k.s.ImportStatement(actor(run), acct.ID, sf)
	f.Close()
	if err != nil {
		return "", err // the database: the file stays for the next run
	}
	to := "done"
	if res.Refused {
		to = "refused"
		if err := writeReason(dir, name, res); err != nil {
			return "", err
		}
	} else {
		c.RowsRead += res.Rows
		c.RowsNew += res.Inserted
		c.RowsMerged += res.Merged
	}
	if err := moveInto(dir, to, name); err != nil {
		return "", err
	}
	switch {
	case res.Refused:
		return fmt.Sprintf("refused/ (%s)", res.Reason.EN), nil
	case res.AlreadyImported:
		return fmt.Sprintf("done/ (already imported, import %d)", res.ImportID), nil
	}
	return fmt.Sprintf("done/ (%d rows, %d new, %d merged, import %d)", res.Rows, res.Inserted, res.Merged, res.ImportID), nil
}

func writeReason(dir, name string, res models.ImportResult) error {
	if err := os.MkdirAll(filepath.Join(dir, "refused"), 0o750); err != nil {
		return err
	}
	text := fmt.Sprintf("%s\n%s\n\n%s\n%s\n(import %d)\n", "This file was refused and nothing of it was imported:", res.Reason.EN,
		"此文件被拒绝，未导入任何内容：", res.Reason.ZH, res.ImportID)
	return os.WriteFile(filepath.Join(dir, "refused", name+".reason.txt"), []byte(text), 0o640)
}

// moveInto moves dir/name into dir/sub/, not overwriting a file already
// there (a second file of the same name gets a time suffix).
func moveInto(dir, sub, name string) error {
	if err := os.MkdirAll(filepath.Join(dir, sub), 0o750); err != nil {
		return err
	}
	dst := filepath.Join(dir, sub, name)
	if _, err := os.Lstat(dst); err == nil {
		dst = filepath.Join(dir, sub, fmt.Sprintf("%s.%d", name, time.Now().UnixNano()))
	}
	return os.Rename(filepath.Join(dir, name), dst)
}

// DropFolder resolves a flow's folder under the drop root, refusing any
// name that leads outside it (absolute paths, "..", symlinks out).
func DropFolder(root, folder string) (string, error) {
	folder = strings.TrimSpace(folder)
	if folder == "" || filepath.IsAbs(folder) || !filepath.IsLocal(folder) {
		return "", flows.Fail("the folder %q must be a relative path inside the drop root", "文件夹 %q 必须是投放根目录下的相对路径", folder)
	}
	rootAbs, err := filepath.EvalSymlinks(root)
	if err != nil {
		return "", flows.Fail("the drop root cannot be read: %v", "无法读取投放根目录：%v", err)
	}
	dir, err := filepath.EvalSymlinks(filepath.Join(rootAbs, folder))
	if err != nil {
		return "", flows.Fail("the drop folder %s does not exist under the drop root", "投放根目录下不存在文件夹 %s", folder)
	}
	if rel, err := filepath.Rel(rootAbs, dir); err != nil || !filepath.IsLocal(rel) {
		return "", flows.Fail("the folder %q leads outside the drop root", "文件夹 %q 指向投放根目录之外", folder)
	}
	return dir, nil
}
