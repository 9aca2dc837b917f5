// Session ownership among replicas that share one store: each open session
// is owned by one replica at a time through a lease row in the database
// (owner id, advertised address, expiry). The owner renews its leases while
// it lives; when it dies they expire and the next replica asked for the
// session takes it over, reloading it from the store.
//
// Every journal write of a session checks, in its own transaction, that
// this replica still owns the lease (a fence): a replica that stalled past
// its expiry and lost the session to another cannot write to it.
//
// A request for a session that another live replica owns is answered with
// OwnedElsewhereError:
//   FAILED_PRECONDITION
//   "session_id: session 'ab12cd34' is owned by replica 'host-4711-9f3a' at
//    10.0.0.7:50051; send its requests there"
// The address is the owner's --advertise_address; clients go there
// (base/session_owner.h writes and parses the message).
#ifndef STIMLOOP_SERVER_SESSION_LEASES_H_
#define STIMLOOP_SERVER_SESSION_LEASES_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "base/session_owner.h"

namespace stimloop {

class SessionLeases {
 public:
  enum class Claimed {
    kHeld,       // this replica held the lease already
    kNew,        // the session had no live owner: this replica took it
    kTakenOver,  // another replica's lease had expired: taken over
    kClosed,     // the session is closed: it needs no owner
  };

  virtual ~SessionLeases() = default;

  // Makes this replica the owner of the open session `session_id` (or
  // says it is closed). NOT_FOUND for an unknown session;
  // OwnedElsewhereError when another replica's lease has not expired;
  // UNAVAILABLE before SetAddress or when the database cannot be reached.
  // Load the session from the store only after this returns.
  virtual absl::StatusOr<Claimed> Claim(const std::string& session_id) = 0;

  // Whether this replica's lease on `session_id` is known to be valid now:
  // claimed or renewed less than the lease's time to live ago (by this
  // machine's clock, measured from before the database set the expiry).
  virtual bool Holds(const std::string& session_id) = 0;

  // Extends every lease this replica holds by the time to live. Returns the
  // sessions whose leases it no longer holds (taken over by another
  // replica after they expired): their in-memory state is stale.
  virtual absl::StatusOr<std::vector<std::string>> Renew() = 0;

  // Gives up every lease (graceful shutdown): other replicas may take the
  // sessions over at once.
  virtual absl::Status ReleaseAll() = 0;

  // The address written into this replica's leases (--advertise_address,
  // or the listening address once the port is known).
  virtual void SetAddress(const std::string& address) = 0;

  virtual absl::Duration ttl() const = 0;
  virtual const std::string& replica_id() const = 0;
};

}  // namespace stimloop

#endif  // STIMLOOP_SERVER_SESSION_LEASES_H_
