package muc

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-xmpp/parley/wire"
)

var (
	roomsLoaded = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "parley", Subsystem: "muc", Name: "rooms_loaded",
		Help: "Rooms in memory (with their goroutine).",
	})
	roomsCreated = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "muc", Name: "rooms_created_total",
		Help: "Rooms created.",
	})
	roomsDestroyed = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "muc", Name: "rooms_destroyed_total",
		Help: "Rooms destroyed (by an owner, or temporary rooms left empty).",
	})
	roomsForwarded = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "muc", Name: "forwarded_total",
		Help: "Stanzas passed on to the cluster node that runs their room.",
	})
	roomsBusy = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "muc", Name: "room_busy_total",
		Help: "Requests refused because a room's inbox stayed full.",
	})
	occupantsJoined = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "muc", Name: "joins_total",
		Help: "Sessions that joined a room.",
	})
	occupantsLeft = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "muc", Name: "leaves_total",
		Help: "Sessions that left a room (or were removed).",
	})
	joinsRefused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "muc", Name: "joins_refused_total",
		Help: "Joins refused, by error condition.",
	}, []string{"condition"})
	messagesBroadcast = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "muc", Name: "messages_total",
		Help: "Groupchat messages broadcast.",
	})
	messagesRefused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "muc", Name: "messages_refused_total",
		Help: "Groupchat messages refused, by reason: rate, archive.",
	}, []string{"reason"})
	affiliationChanges = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "muc", Name: "affiliation_changes_total",
		Help: "Affiliations granted or revoked.",
	})
	invitesSent = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "muc", Name: "invites_total",
		Help: "Mediated invitations passed on.",
	})
	notifications = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "muc", Name: "away_notifications_total",
		Help: "Notifications requested for members who are away, by cause: mention, all.",
	}, []string{"cause"})
	moderations = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "muc", Name: "moderations_total",
		Help: "Messages retracted by moderators.",
	})
)

// refusedJoinConditions are every condition joinError uses.
var refusedJoinConditions = []string{wire.ErrNotAllowed, wire.ErrResourceConstraint, wire.ErrItemNotFound,
	wire.ErrForbidden, wire.ErrConflict, wire.ErrRegistrationRequired, wire.ErrNotAuthorized,
	wire.ErrServiceUnavailable}

func init() {
	prometheus.MustRegister(roomsLoaded, roomsCreated, roomsDestroyed, roomsBusy, roomsForwarded, occupantsJoined, occupantsLeft,
		joinsRefused, messagesBroadcast, messagesRefused, affiliationChanges, invitesSent, notifications, moderations)
	for _, c := range refusedJoinConditions {
		joinsRefused.WithLabelValues(c)
	}
	for _, r := range []string{"rate", "archive"} {
		messagesRefused.WithLabelValues(r)
	}
	for _, c := range []string{"mention", "all"} {
		notifications.WithLabelValues(c)
	}
}
