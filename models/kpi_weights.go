package models

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"gorm.io/gorm"
)

// Audit actions of the KPI weights.
const (
	ActKPIWeightsSave    = "kpi_weights.save"
	ActKPIWeightsRestore = "kpi_weights.restore"
)

// ErrWeightsChanged: another save of the same set landed first.
var ErrWeightsChanged = errors.New("kpi: the weight set was saved by someone else meanwhile; reload and try again")

// GlobalWeights names the global default weight set in place of a merchant code.
const GlobalWeights = ""

func decodeWeights(body string) (Weights, error) {
	var w Weights
	if err := json.Unmarshal([]byte(body), &w); err != nil {
		return Weights{}, err
	}
	if w.KPIs == nil {
		w.KPIs = map[string]KPIWeight{}
	}
	if w.Accounts == nil {
		w.Accounts = map[uint64]float64{}
	}
	return w, nil
}

// weightsAllowed: a merchant's set is open to users with that merchant in
// scope; the global default to those who see every merchant.
func weightsAllowed(scope Scope, merchant string) bool {
	if merchant == GlobalWeights {
		return scope.All
	}
	return scope.Allows(merchant)
}

func (s *Store) weightSet(db *gorm.DB, merchant string) (*KPIWeightSet, error) {
	var set KPIWeightSet
	err := db.Where("merchant_code = ?", merchant).Take(&set).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("kpi: unable to read the weight set: %w", err)
	}
	return &set, nil
}

func (s *Store) weightVersion(db *gorm.DB, setID uint64, version int) (*KPIWeightVersion, error) {
	var v KPIWeightVersion
	err := db.Where("set_id = ? AND version = ?", setID, version).Take(&v).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("kpi: unable to read weight set version %d: %w", version, err)
	}
	return &v, nil
}

// OwnWeights returns the merchant's own active version (or the global
// default's, for GlobalWeights); nil when none was ever saved.
func (s *Store) OwnWeights(scope Scope, merchant string) (*KPIWeightVersion, error) {
	if !weightsAllowed(scope, merchant) {
		return nil, ErrNotFound
	}
	set, err := s.weightSet(s.DB, merchant)
	if err != nil || set == nil {
		return nil, err
	}
	return s.weightVersion(s.DB, set.ID, set.ActiveVersion)
}

// ActiveWeights returns the weights in force for a merchant: its own active
// version, else the global default's, else DefaultWeights (version nil).
// Merchant "" asks for the global default itself (used when several
// merchants are in view at once).
func (s *Store) ActiveWeights(scope Scope, merchant string) (Weights, *KPIWeightVersion, error) {
	if merchant != GlobalWeights && !scope.Allows(merchant) {
		return Weights{}, nil, ErrNotFound
	}
	for _, code := range []string{merchant, GlobalWeights} {
		set, err := s.weightSet(s.DB, code)
		if err != nil {
			return Weights{}, nil, err
		}
		if set == nil {
			if code == GlobalWeights {
				break
			}
			continue
		}
		v, err := s.weightVersion(s.DB, set.ID, set.ActiveVersion)
		if err != nil {
			return Weights{}, nil, err
		}
		w, err := v.Weights()
		if err != nil {
			return Weights{}, nil, err
		}
		return w, v, nil
	}
	return DefaultWeights(), nil, nil
}

// WeightVersions lists a merchant's saved versions, newest first.
func (s *Store) WeightVersions(scope Scope, merchant string) ([]KPIWeightVersion, error) {
	if !weightsAllowed(scope, merchant) {
		return nil, ErrNotFound
	}
	set, err := s.weightSet(s.DB, merchant)
	if err != nil || set == nil {
		return nil, err
	}
	var out []KPIWeightVersion
	if err := s.DB.Where("set_id = ?", set.ID).Order("version DESC").Limit(500).Find(&out).Error; err != nil {
		return nil, fmt.Errorf("kpi: unable to list weight set versions: %w", err)
	}
	return out, nil
}

// WeightVersion returns one saved version of a merchant's set.
func (s *Store) WeightVersion(scope Scope, merchant string, version int) (*KPIWeightVersion, error) {
	if !weightsAllowed(scope, merchant) {
		return nil, ErrNotFound
	}
	set, err := s.weightSet(s.DB, merchant)
	if err != nil {
		return nil, err
	}
	if set == nil {
		return nil, ErrNotFound
	}
	return s.weightVersion(s.DB, set.ID, version)
}

// merchantAccountIDs lists the channel accounts a merchant's set weighs
// (every account, for the global default).
func (s *Store) merchantAccountIDs(db *gorm.DB, merchant string) ([]uint64, error) {
	q := db.Model(&ChannelAccount{})
	if merchant != GlobalWeights {
		q = q.Where("merchant_code = ?", merchant)
	}
	var ids []uint64
	if err := q.Order("id").Pluck("id", &ids).Error; err != nil {
		return nil, fmt.Errorf("kpi: unable to list channel accounts: %w", err)
	}
	return ids, nil
}

// SaveWeights validates a weight set and saves it as the merchant's new
// active version, with the reason; audited with the weights before and
// after. Account weights must name the merchant's own accounts.
func (s *Store) SaveWeights(a Actor, scope Scope, merchant string, w Weights, reason string) (*KPIWeightVersion, error) {
	return s.saveWeights(a, scope, merchant, w, reason, ActKPIWeightsSave, 0)
}

// RestoreWeights makes an old version active again by saving a copy of it
// as a new version (history is never rewritten); audited.
func (s *Store) RestoreWeights(a Actor, scope Scope, merchant string, version int, reason string) (*KPIWeightVersion, error) {
	old, err := s.WeightVersion(scope, merchant, version)
	if err != nil {
		return nil, err
	}
	w, err := old.Weights()
	if err != nil {
		return nil, err
	}
	return s.saveWeights(a, scope, merchant, w, reason, ActKPIWeightsRestore, version)
}

func (s *Store) saveWeights(a Actor, scope Scope, merchant string, w Weights, reason, action string, from int) (*KPIWeightVersion, error) {
	if !weightsAllowed(scope, merchant) {
		return nil, ErrNotFound
	}
	reason = strings.TrimSpace(reason)
	w.Name = strings.TrimSpace(w.Name)
	var out *KPIWeightVersion
	err := s.Tx(func(tx *gorm.DB) error {
		ids, err := s.merchantAccountIDs(tx, merchant)
		if err != nil {
			return err
		}
		errs := FieldErrors{}
		if err := w.Validate(ids); err != nil {
			var fe FieldErrors
			if !errors.As(err, &fe) {
				return err
			}
			errs = fe
		}
		own := map[uint64]bool{}
		for _, id := range ids {
			own[id] = true
		}
		for id := range w.Accounts {
			if !own[id] {
				errs["a."+strconv.FormatUint(id, 10)] = "kpi.err_account"
			}
		}
		if reason == "" {
			errs["reason"] = "kpi.err_reason"
		} else if len([]rune(reason)) > 500 {
			errs["reason"] = "kpi.err_reason_long"
		}
		if len(errs) > 0 {
			return errs
		}
		set, err := s.weightSet(tx, merchant)
		if err != nil {
			return err
		}
		now := s.now()
		var before any
		if set == nil {
			set = &KPIWeightSet{MerchantCode: merchant, CreatedAt: now, UpdatedAt: now}
			if err := tx.Create(set).Error; err != nil {
				if errors.Is(err, gorm.ErrDuplicatedKey) {
					return ErrWeightsChanged
				}
				return fmt.Errorf("kpi: unable to create the weight set: %w", err)
			}
		} else if prev, err := s.weightVersion(tx, set.ID, set.ActiveVersion); err == nil {
			before, _ = prev.Weights()
		}
		var newest int
		if err := tx.Model(&KPIWeightVersion{}).Where("set_id = ?", set.ID).Select("COALESCE(MAX(version), 0)").Scan(&newest).Error; err != nil {
			return fmt.Errorf("kpi: unable to number the new version: %w", err)
		}
		body, err := json.Marshal(Weights{KPIs: w.KPIs, Accounts: w.Accounts})
		if err != nil {
			return err
		}
		v := &KPIWeightVersion{SetID: set.ID, Version: newest + 1, Name: w.Name, Body: string(body), Reason: reason, CreatedBy: a.Name, CreatedAt: now}
		if err := tx.Create(v).Error; err != nil {
			if errors.Is(err, gorm.ErrDuplicatedKey) {
				return ErrWeightsChanged // two saves raced; the other won
			}
			return fmt.Errorf("kpi: unable to save the weight set: %w", err)
		}
		res := tx.Model(&KPIWeightSet{}).Where("id = ? AND active_version = ?", set.ID, set.ActiveVersion).
			Updates(map[string]any{"active_version": v.Version, "updated_at": now})
		if res.Error != nil {
			return fmt.Errorf("kpi: unable to activate the new version: %w", res.Error)
		}
		if res.RowsAffected == 0 {
			return ErrWeightsChanged
		}
		target := merchant
		if target == GlobalWeights {
			target = "global"
		}
		detail := fmt.Sprintf("weights of %s saved as version %d (%s): %s", target, v.Version, w.Name, reason)
		if action == ActKPIWeightsRestore {
			detail = fmt.Sprintf("weights of %s restored from version %d as version %d: %s", target, from, v.Version, reason)
		}
		after := w
		after.Name = v.Name
		if err := writeAudit(tx, a, now, AuditEvent{Action: action, ObjectType: "kpi_weights", ObjectID: target + "/v" + strconv.Itoa(v.Version),
			MerchantCode: merchant, Detail: detail, Before: before, After: after}); err != nil {
			return err
		}
		out = v
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func init() {
	AuditActions = append(AuditActions, ActKPIWeightsSave, ActKPIWeightsRestore)
}

// KPIResult is a merchant's scoreboard over a range under the weights in
// force, as the CLI (`payfuse kpi --json`) and the API print it.
type KPIResult struct {
	Merchant string `json:"merchant"` // "" = every merchant in scope
	From     string `json:"from"`
	To       string `json:"to"`
	Method   string `json:"method,omitempty"`
	// WeightsFrom says whose weights scored: "merchant", "global" or "default".
	WeightsFrom    string  `json:"weights_from"`
	WeightsVersion int     `json:"weights_version,omitempty"`
	Weights        Weights `json:"weights"`
	Scoreboard
}

// ScoreKPIs scores the accounts in view under the weights in force.
func (s *Store) ScoreKPIs(scope Scope, f KPIFilter) (*KPIResult, error) {
	accts, err := s.KPIs(scope, f)
	if err != nil {
		return nil, err
	}
	w, v, err := s.ActiveWeights(scope, f.Merchant)
	if err != nil {
		return nil, err
	}
	out := &KPIResult{Merchant: f.Merchant, From: f.From, To: f.To, Method: f.Method, Weights: w, WeightsFrom: "default", Scoreboard: Score(accts, w)}
	if v != nil {
		out.WeightsVersion = v.Version
		out.WeightsFrom = "global"
		if own, err := s.OwnWeights(scope, f.Merchant); err == nil && own != nil && f.Merchant != GlobalWeights {
			out.WeightsFrom = "merchant"
		}
	}
	return out, nil
}
