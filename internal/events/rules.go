package events

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/nimbus-run/nimbus/api"
	"github.com/nimbus-run/nimbus/internal/async"
	"github.com/nimbus-run/nimbus/internal/events/pattern"
	"github.com/nimbus-run/nimbus/internal/function"
	"github.com/nimbus-run/nimbus/internal/invoke"
)

// RulesConsumer is the durable consumer of the bus that all nodes share.
const RulesConsumer = "nimbus-rules"

// compiledRule is a rule ready to deliver.
type compiledRule struct {
	rule       api.Rule
	transforms []pattern.Transform
}

// ruleEngine matches bus events against the rules (a pattern.Set) and
// delivers each match to the rule's targets.
type ruleEngine struct {
	s   *Service
	set *pattern.Set

	mu    sync.RWMutex
	rules map[string]*compiledRule

	iter jetstream.MessagesContext
	wg   sync.WaitGroup
}

func newRuleEngine(s *Service) *ruleEngine {
	return &ruleEngine{s: s, set: pattern.NewSet(), rules: map[string]*compiledRule{}}
}

func (e *ruleEngine) put(r *api.Rule) error {
	p, err := pattern.Compile(r.Pattern)
	if err != nil {
		return function.Invalid("pattern", "%v", err)
	}
	cr := &compiledRule{rule: *r}
	for _, t := range r.Targets {
		cr.transforms = append(cr.transforms, t.InputTransform.Transform())
	}
	e.mu.Lock()
	e.rules[r.Name] = cr
	e.mu.Unlock()
	if r.Disabled {
		e.set.Remove(r.Name)
		return nil
	}
	return e.set.Add(r.Name, p)
}

func (e *ruleEngine) remove(name string) {
	e.mu.Lock()
	delete(e.rules, name)
	e.mu.Unlock()
	e.set.Remove(name)
}

func (e *ruleEngine) get(name string) (*api.Rule, error) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	cr, ok := e.rules[name]
	if !ok {
		return nil, fmt.Errorf("rule %q: %w", name, function.ErrNotFound)
	}
	r := cr.rule
	return &r, nil
}

func (e *ruleEngine) list() []api.Rule {
	e.mu.RLock()
	out := make([]api.Rule, 0, len(e.rules))
	for _, cr := range e.rules {
		out = append(out, cr.rule)
	}
	e.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Match returns the names of the enabled rules event (CloudEvent JSON)
// matches.
func (e *ruleEngine) Match(event []byte) ([]string, error) { return e.set.Match(event) }

func (e *ruleEngine) start(ctx context.Context) error {
	cons, err := e.s.bus.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable: RulesConsumer, Description: "event rules of every node",
		AckPolicy: jetstream.AckExplicitPolicy, AckWait: e.s.cfg.AckWait, MaxDeliver: -1,
		MaxAckPending: 10000, DeliverPolicy: jetstream.DeliverNewPolicy,
	})
	if err != nil {
		return fmt.Errorf("events: rules consumer: %w", err)
	}
	if e.iter, err = cons.Messages(jetstream.PullMaxMessages(256)); err != nil {
		return fmt.Errorf("events: rules: %w", err)
	}
	const workers = 8
	msgs := make(chan jetstream.Msg)
	e.wg.Add(1 + workers)
	go func() {
		defer e.wg.Done()
		defer close(msgs)
		for {
			m, err := e.iter.Next()
			if err != nil {
				if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
					return
				}
				continue
			}
			msgs <- m
		}
	}()
	for range workers {
		go func() {
			defer e.wg.Done()
			for m := range msgs {
				e.handle(m)
			}
		}()
	}
	return nil
}

func (e *ruleEngine) stop() {
	if e.iter != nil {
		e.iter.Stop()
	}
	e.wg.Wait()
}

// handle delivers one bus event to the targets of every rule it matches,
// then acknowledges it. When a delivery fails the event is redelivered
// with backoff; deliveries to functions carry a message id derived from the
// event, rule and target, so targets already served are not served twice.
func (e *ruleEngine) handle(m jetstream.Msg) {
	md, err := m.Metadata()
	if err != nil {
		_ = m.Term()
		return
	}
	names, err := e.set.Match(m.Data())
	if err != nil {
		e.s.log.Warn("events: bus event is not JSON, dropped", "seq", md.Sequence.Stream, "err", err)
		_ = m.TermWithReason("not JSON")
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(e.s.ctx), 30*time.Second)
	defer cancel()
	var failed error
	for _, name := range names {
		e.mu.RLock()
		cr := e.rules[name]
		e.mu.RUnlock()
		if cr == nil {
			continue
		}
		for i, t := range cr.rule.Targets {
			if err := e.deliver(ctx, cr, i, t, m.Data(), md); err != nil {
				e.s.log.Warn("events: rule target failed", "rule", name, "target", i, "err", err)
				failed = err
			}
		}
	}
	if failed != nil && md.NumDelivered < 10 {
		_ = m.NakWithDelay(retryDelay(int(md.NumDelivered)))
		return
	}
	_ = m.Ack()
}

func (e *ruleEngine) deliver(ctx context.Context, cr *compiledRule, i int, t api.RuleTarget, event []byte, md *jetstream.MsgMetadata) error {
	payload := event
	if tr := cr.transforms[i]; tr.InputPath != "" || tr.InputTemplate != "" {
		out, err := tr.Apply(event, pattern.TransformContext{RuleName: cr.rule.Name,
			RuleARN: "arn:nimbus:events:::rule/" + cr.rule.Name, IngestionTime: md.Timestamp})
		if err != nil {
			// A transform that cannot apply to this event will not apply
			// on redelivery either: log it, do not retry.
			e.s.log.Warn("events: input transform failed", "rule", cr.rule.Name, "target", i, "err", err)
			return nil
		}
		payload = out
	}
	e.s.m.matches.Inc()
	id := deliveryID(cr.rule.Name, i, md.Sequence.Stream)
	switch {
	case t.Function != "":
		_, err := e.s.queue.EnqueueWith(ctx, &invoke.Request{Function: t.Function, Payload: payload, Source: "rule:" + cr.rule.Name, ID: id},
			async.EnqueueOptions{DedupeID: id, ContentType: "application/json"})
		if errors.Is(err, function.ErrNotFound) {
			e.s.log.Warn("events: rule targets a missing function", "rule", cr.rule.Name, "function", t.Function)
			return nil
		}
		return err
	case t.Subject != "":
		return e.s.publishRaw(ctx, t.Subject, payload, id)
	}
	return nil
}

// deliveryID names one delivery of one bus event to one target.
func deliveryID(rule string, target int, seq uint64) string {
	sum := sha256.Sum256([]byte(rule + "\x00" + strconv.Itoa(target) + "\x00" + strconv.FormatUint(seq, 10)))
	return "rule." + hex.EncodeToString(sum[:12])
}

// publishRaw publishes b to subject: stored and acknowledged when a stream
// captures the subject, a plain NATS message otherwise.
func (s *Service) publishRaw(ctx context.Context, subject string, b []byte, msgID string) error {
	m := nats.NewMsg(subject)
	m.Data = b
	m.Header.Set("Content-Type", "application/json")
	if msgID != "" {
		m.Header.Set(jetstream.MsgIDHeader, msgID)
	}
	if _, err := s.js.StreamNameBySubject(ctx, subject); errors.Is(err, jetstream.ErrStreamNotFound) {
		if err := s.st.NC.PublishMsg(m); err != nil {
			return fmt.Errorf("publish to %s: %w", subject, err)
		}
		return nil
	}
	if _, err := s.js.PublishMsg(ctx, m); err != nil {
		return fmt.Errorf("publish to %s: %w", subject, err)
	}
	return nil
}
