package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/brownout-io/brownout"
	"github.com/brownout-io/brownout/sdk/retry"
)

// errGone: the delivery left the outbox under us (its webhook deleted).
var errGone = errors.New("delivery gone")

// Run delivers due deliveries until ctx ends, then waits for those in
// flight; an interrupted one keeps its lease's worth of delay at most
// before the next claim (here or on another replica) takes it again.
func (n *Notifier) Run(ctx context.Context) {
	if n.cfg.Exclusive != nil {
		if freed, err := n.cfg.Exclusive.ReleaseLeases(ctx); err != nil {
			n.log.Warn("free webhook delivery leases", "err", err)
		} else if freed > 0 {
			n.log.Info("webhook deliveries interrupted by the previous stop are due again", "deliveries", freed)
		}
	}
	sem := make(chan struct{}, n.cfg.Workers)
	var wg sync.WaitGroup
	defer wg.Wait()
	t := time.NewTicker(n.cfg.Poll)
	defer t.Stop()
	var lastStats, lastPrune time.Time
	for {
		if free := n.cfg.Workers - len(sem); free > 0 {
			n.claim(ctx, free, sem, &wg)
		}
		if now := time.Now(); now.Sub(lastStats) >= 5*time.Second {
			lastStats = now
			n.refreshStats(ctx)
		}
		if now := time.Now(); now.Sub(lastPrune) >= time.Hour {
			lastPrune = now
			n.pruneDeadLetters(ctx)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-n.kick:
		}
	}
}

func (n *Notifier) refreshStats(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	p, d, err := n.store.OutboxStats(ctx)
	if err != nil {
		return
	}
	n.pending.Set(float64(p))
	n.dead.Set(float64(d))
}

// pruneDeadLetters forgets dead letters past their retention, in small
// batches so that writers are never held up for long. Every replica may
// run it; the deletes do not conflict.
func (n *Notifier) pruneDeadLetters(ctx context.Context) {
	before := n.cfg.Now().Add(-n.cfg.DeadLetterRetention)
	total := 0
	for ctx.Err() == nil {
		k, err := n.store.PruneDeadLetters(ctx, before, 500)
		if err != nil {
			n.log.Warn("prune dead letters", "err", err)
			break
		}
		total += k
		if k < 500 {
			break
		}
	}
	if total > 0 {
		n.log.Info("dead letters past their retention deleted", "deleted", total, "retention", n.cfg.DeadLetterRetention)
	}
}

func (n *Notifier) claim(ctx context.Context, free int, sem chan struct{}, wg *sync.WaitGroup) {
	ds, err := n.store.ClaimDeliveries(ctx, n.cfg.Now(), n.lease, free)
	if err != nil {
		// Once a minute: the deliverer polls every second, and a store
		// that is down says so elsewhere too (/readyz).
		if now := time.Now(); ctx.Err() == nil && now.Sub(n.claimWarned) >= time.Minute {
			n.claimWarned = now
			n.log.Warn("claim webhook deliveries", "err", err)
		}
		return
	}
	if len(ds) == 0 {
		return
	}
	hooks, err := n.store.ListWebhooks(ctx)
	if err != nil {
		n.log.Warn("load webhooks", "err", err)
		return // the leases run out and the deliveries come back
	}
	byID := make(map[string]brownout.Webhook, len(hooks))
	for _, w := range hooks {
		byID[w.ID] = w
	}
	for _, d := range ds {
		w, ok := byID[d.WebhookID]
		if !ok {
			continue // deleted since the claim; its deliveries went with it
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			n.deliver(ctx, w, d)
		})
	}
}

// deliver runs one delivery's remaining attempts with the SDK's retry
// (full jitter, the webhook's budget), each counted in the store before
// its request, and settles it: delivered, dead-lettered, or put back.
func (n *Notifier) deliver(ctx context.Context, w brownout.Webhook, d brownout.Delivery) {
	log := n.log.With("webhook", w.ID, "delivery", d.ID)
	// A background context settles the outcome even while stopping: a
	// delivery that got its 2xx must not be sent again needlessly.
	settle, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	lastErr := d.LastError
	left := n.cfg.MaxAttempts - d.Attempts
	if left <= 0 {
		// Its last attempt was started and never settled (a crash).
		msg := "attempts exhausted; the last one was interrupted"
		if lastErr != "" {
			msg += " (before it: " + lastErr + ")"
		}
		n.bury(settle, log, d.ID, msg)
		return
	}
	r := retry.New(retry.Config{
		MaxAttempts: left, BaseDelay: n.cfg.BaseDelay, MaxDelay: n.cfg.MaxDelay,
		Budget: n.budget(w.ID),
		// An attempt that timed out is retried (the default predicate
		// stops on deadlines); what must not be retried is Permanent, and
		// nothing is once the deliverer stops.
		Retryable: func(error) bool { return ctx.Err() == nil },
	})
	err := r.Do(ctx, func(ctx context.Context) error {
		attempt, err := n.store.StartAttempt(ctx, d.ID, n.cfg.Now(), n.lease)
		if err != nil {
			if brownout.ErrorCode(err) == brownout.ENOTFOUND {
				return retry.Permanent(errGone)
			}
			return retry.Permanent(fmt.Errorf("%w: record attempt: %w", errStore, err))
		}
		err = n.send(ctx, w, d, attempt)
		if err != nil {
			n.failed.Inc()
			lastErr = errorText(err)
			if ferr := n.store.FailAttempt(ctx, d.ID, lastErr); ferr != nil {
				log.Warn("record failed attempt", "err", ferr)
			}
			log.Info("webhook attempt failed", "attempt", attempt, "err", lastErr)
		}
		return err
	})
	switch {
	case err == nil:
		n.delivered.Inc()
		if err := n.store.CompleteDelivery(settle, d.ID); err != nil {
			log.Warn("complete delivery (it will be sent again)", "err", err)
		}
	case errors.Is(err, errGone):
	case ctx.Err() != nil:
		// Stopping: hand the delivery back at once rather than at the end
		// of its lease.
		if err := n.store.RetryLater(settle, d.ID, n.cfg.Now(), lastErr); err != nil {
			log.Warn("release delivery", "err", err)
		}
	case errors.Is(err, retry.ErrBudgetExhausted):
		if err := n.store.RetryLater(settle, d.ID, n.cfg.Now().Add(n.cfg.MaxDelay), lastErr); err != nil {
			log.Warn("postpone delivery", "err", err)
		}
	case errors.Is(err, errStore):
		log.Warn("webhook delivery", "err", err) // the lease runs out and it comes back
	default:
		n.bury(settle, log, d.ID, lastErr)
	}
}

var errStore = errors.New("store")

func (n *Notifier) bury(ctx context.Context, log interface{ Warn(string, ...any) }, id, msg string) {
	if err := n.store.DeadLetter(ctx, id, n.cfg.Now(), msg); err != nil {
		log.Warn("dead-letter delivery", "err", err)
		return
	}
	n.deadLettered.Inc()
	n.log.Warn("webhook delivery dead-lettered", "delivery", id, "last_error", msg)
}

// Body returns what a webhook of format receives for ev.
func Body(format string, ev brownout.Event) []byte {
	var b []byte
	if format == brownout.FormatSlack {
		b, _ = json.Marshal(map[string]string{"text": ev.Text})
	} else {
		b, _ = json.Marshal(ev)
	}
	return b
}

// statusError is a receiver's non-2xx answer.
type statusError struct {
	code       int
	snippet    string
	retryAfter time.Duration
}

func (e *statusError) Error() string {
	s := "status " + strconv.Itoa(e.code) + " " + http.StatusText(e.code)
	if e.snippet != "" {
		s += ": " + e.snippet
	}
	return s
}

// RetryAfter implements retry.RetryAfterer.
func (e *statusError) RetryAfter() time.Duration { return e.retryAfter }

// send makes one attempt.
func (n *Notifier) send(ctx context.Context, w brownout.Webhook, d brownout.Delivery, attempt int) error {
	u, err := n.checkURL(w.URL)
	if err != nil {
		// The allow-list changed since the webhook was created.
		return retry.Permanent(fmt.Errorf("refused: %s", brownout.ErrorMessage(err)))
	}
	body := Body(w.Format, d.Event)
	ctx, cancel := context.WithTimeout(ctx, n.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return retry.Permanent(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Brownout-Webhook/1")
	req.Header.Set(HeaderDelivery, d.ID)
	req.Header.Set(HeaderEvent, d.Event.Type)
	req.Header.Set("Brownout-Attempt", strconv.Itoa(attempt))
	req.Header.Set(HeaderSignature, Sign(w.Secret, n.cfg.Now(), body))
	resp, err := n.client.Do(req)
	if err != nil {
		if errors.Is(err, ErrRefusedAddress) {
			return retry.Permanent(err)
		}
		return err
	}
	defer resp.Body.Close()
	head, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, MaxResponseRead))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	se := &statusError{code: resp.StatusCode, snippet: printable(head)}
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		se.snippet = "redirect to " + printable([]byte(resp.Header.Get("Location"))) + " not followed"
		return retry.Permanent(se)
	}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		se.retryAfter = min(time.Duration(s)*time.Second, n.cfg.MaxDelay)
	}
	switch resp.StatusCode {
	case http.StatusRequestTimeout, http.StatusTooEarly, http.StatusTooManyRequests:
		return se
	}
	if resp.StatusCode < 500 {
		// The receiver refuses this request as such: retrying will not
		// change its mind; a redrive will, once it is fixed.
		return retry.Permanent(se)
	}
	return se
}

// printable keeps a receiver's text safe to log and show: one line,
// printable characters, bounded.
func printable(b []byte) string {
	s := strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return ' '
	}, string(b))
	return strings.TrimSpace(s)
}

func errorText(err error) string {
	s := err.Error()
	if len(s) > maxErrorText {
		s = s[:maxErrorText] + "…"
	}
	return s
}
