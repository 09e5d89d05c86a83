package hub

import (
	"sync"
	"sync/atomic"
)

// Message is one frame for a subscriber.
type Message struct {
	Version uint64
	Data    []byte
}

// Subscriber is one connection's view of its service: the latest pending
// snapshot and a way to be woken when it changes — a callback set with
// OnReady (what the websocket server uses), or else the Ready channel. The
// woken writer sends Take's message.
type Subscriber struct {
	Service  string
	Instance string
	TokenID  string

	pending atomic.Pointer[Message]
	ready   chan struct{}
	notify  atomic.Pointer[func()]
	done    chan struct{}
	once    sync.Once
	code    atomic.Int32
	reason  atomic.Value

	hub   *Hub
	topic *topic
	pres  *presence // stays in the topic's map while subscribed

	// the last change pushed to this subscriber, for propagation latency
	pushedVersion atomic.Uint64
	pushedAt      atomic.Int64 // Unix nanoseconds; 0 once acked
}

// Ready is signalled whenever a new message is pending.
func (s *Subscriber) Ready() <-chan struct{} { return s.ready }

// Done is closed when the hub ends the subscription (token revoked,
// shutdown); CloseCode and CloseReason then say why.
func (s *Subscriber) Done() <-chan struct{} { return s.done }

// CloseCode is the websocket close code to use once Done is closed.
func (s *Subscriber) CloseCode() int { return int(s.code.Load()) }

// CloseReason is the close reason to use once Done is closed.
func (s *Subscriber) CloseReason() string {
	r, _ := s.reason.Load().(string)
	return r
}

// Take returns the latest pending message and clears it; nil when none.
func (s *Subscriber) Take() *Message { return s.pending.Swap(nil) }

// Pending reports whether a message waits to be taken.
func (s *Subscriber) Pending() bool { return s.pending.Load() != nil }

// OnReady sets a function called, instead of signalling Ready, whenever a
// message becomes pending or the subscription ends. It runs on the
// publisher's goroutine under the topic's lock: it must not block (start a
// goroutine, set a flag). A message offered before OnReady is set is still
// pending: check Pending after setting it.
func (s *Subscriber) OnReady(fn func()) { s.notify.Store(&fn) }

func (s *Subscriber) offer(m *Message) {
	s.pending.Store(m)
	if fn := s.notify.Load(); fn != nil {
		(*fn)()
		return
	}
	select {
	case s.ready <- struct{}{}:
	default:
	}
}

func (s *Subscriber) end(code int, reason string) {
	s.once.Do(func() {
		s.code.Store(int32(code))
		s.reason.Store(reason)
		close(s.done)
		if fn := s.notify.Load(); fn != nil {
			(*fn)()
		}
	})
}
