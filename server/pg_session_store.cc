#include "server/pg_session_store.h"

#include <unistd.h>

#include <random>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/echo.h"
#include "server/pg_schema.h"
#include "server/store_checksum.h"
#include "server/store_encoding.h"

namespace stimloop {
namespace {

std::string DefaultReplicaId() {
  char host[256] = {0};
  if (gethostname(host, sizeof(host) - 1) != 0) host[0] = '\0';
  std::random_device random;
  return absl::StrFormat("%s-%d-%04x", host, static_cast<int>(getpid()), random() & 0xffff);
}

}  // namespace

absl::StatusOr<std::unique_ptr<PgSessionStore>> PgSessionStore::Open(
    const std::string& conninfo, const PgStoreOptions& options) {
  if (options.connections < 1) {
    return absl::InvalidArgumentError("connections: must be at least 1");
  }
  if (options.lease_ttl <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("lease_ttl: must be positive");
  }
  auto conn = PgConnection::Connect(conninfo);
  if (!conn.ok()) return conn.status();
  const std::string where = absl::StrCat("PostgreSQL ", (*conn)->Describe());
  if (absl::Status s = CheckAndMigratePgSchema(**conn, where); !s.ok()) return s;
  auto pool = std::make_unique<PgPool>(conninfo, *std::move(conn), options.connections);
  return std::unique_ptr<PgSessionStore>(new PgSessionStore(
      std::move(pool), where, options.replica_id.empty() ? DefaultReplicaId() : options.replica_id,
      options.address, options.lease_ttl));
}

PgSessionStore::PgSessionStore(std::unique_ptr<PgPool> pool, std::string where,
                               std::string replica_id, std::string address, absl::Duration ttl)
    : where_(std::move(where)),
      replica_id_(std::move(replica_id)),
      ttl_(ttl),
      pool_(std::move(pool)),
      address_(std::move(address)) {}

absl::Status PgSessionStore::InTransaction(PgConnection& c, absl::string_view what,
                                           absl::FunctionRef<absl::Status()> body) {
  const std::string context = absl::StrCat("session store: ", what);
  if (absl::Status s = c.Begin("BEGIN", context); !s.ok()) return s;
  absl::Status status = body();
  if (!status.ok()) {
    c.Rollback();
    return status;
  }
  return c.Commit(context);
}

std::string PgSessionStore::Address() {
  absl::MutexLock lock(&mu_);
  return address_;
}

absl::Status PgSessionStore::InSessionTransaction(PgConnection& c, const std::string& session_id,
                                                  absl::string_view what,
                                                  absl::FunctionRef<absl::Status()> body) {
  absl::Status status = InTransaction(c, what, body);
  // The caller's copy of the session may now differ from the store (a
  // commit whose outcome is unknown, a write the fence refused): it is
  // reloaded before it serves again (SessionManager::Find asks Holds).
  if (!status.ok()) {
    absl::MutexLock lock(&mu_);
    held_.erase(session_id);
  }
  return status;
}

absl::Status PgSessionStore::InsertEvent(PgConnection& c, const std::string& session_id,
                                         absl::string_view kind, absl::string_view detail,
                                         absl::Time time) {
  PgParams p;
  if (session_id.empty()) {
    p.Null();
  } else {
    p.Text(session_id);
  }
  p.Int(Nanos(time)).Text(kind).Text(detail);
  return c
      .Exec("INSERT INTO events (session_id, time_ns, kind, detail) VALUES ($1::text, $2, $3, $4)",
            p, "session store: insert into events")
      .status();
}

absl::Status PgSessionStore::SessionCreated(const std::string& session_id,
                                            const v1::SessionConfig& config, absl::Time created) {
  auto json = ConfigJson(config);
  if (!json.ok()) return json.status();
  const std::string config_bytes = config.SerializeAsString();
  const std::string metadata = MetadataJson(config);
  auto handle = pool_->Acquire();
  if (!handle.ok()) return handle.status();
  PgConnection& c = **handle;
  const absl::Time claimed = absl::Now();
  const std::string address = Address();
  absl::Status status = InTransaction(c, "insert into sessions", [&]() -> absl::Status {
    PgParams p;
    p.Text(session_id)
        .Int(Nanos(created))
        .Text(config.optimizer().name())
        .Text(config.image_space().name())
        .Bytes(config_bytes)
        .Int(StoreChecksum(config_bytes))
        .Text(*json)
        .Text(metadata);
    absl::Status s =
        c.Exec(
             "INSERT INTO sessions (id, status, created_ns, optimizer, image_space, config, "
             "config_crc32, config_json, metadata_json) "
             "VALUES ($1, 'open', $2, $3, $4, $5, $6, $7, $8)",
             p, "session store: insert into sessions")
            .status();
    if (absl::IsAlreadyExists(s)) {
      return absl::AlreadyExistsError(
          absl::StrCat("session_id: '", session_id, "' already exists in the store"));
    }
    if (!s.ok()) return s;
    PgParams lease = TtlParams();
    lease.Text(session_id).Text(replica_id_).Text(address);
    s = c.Exec(
             "INSERT INTO leases (session_id, owner, address, acquired_at, expires_at) "
             "VALUES ($2, $3, $4, clock_timestamp(), "
             "clock_timestamp() + $1 * interval '1 microsecond')",
             lease, "session store: insert into leases")
            .status();
    if (!s.ok()) return s;
    return InsertEvent(c, session_id, kEventCreated, "", created);
  });
  if (status.ok()) {
    absl::MutexLock lock(&mu_);
    held_[session_id] = claimed + ttl_;
  }
  return status;
}

absl::Status PgSessionStore::GenerationProposed(const std::string& session_id, int64_t generation,
                                                absl::Span<const StimulusEntry> stimuli,
                                                const std::string& optimizer_state,
                                                int64_t responses_told, size_t handed_out) {
  if (handed_out > stimuli.size()) {
    return absl::InternalError(absl::StrCat("session store: ", handed_out, " of ",
                                            stimuli.size(), " stimuli handed out"));
  }
  const int64_t now = Nanos(absl::Now());
  auto handle = pool_->Acquire();
  if (!handle.ok()) return handle.status();
  PgConnection& c = **handle;
  return InSessionTransaction(c, session_id, "insert into generations", [&]() -> absl::Status {
    if (absl::Status s = Fence(c, session_id); !s.ok()) return s;
    PgParams g;
    g.Text(session_id)
        .Int(generation)
        .Int(now)
        .Int(responses_told)
        .Bytes(optimizer_state)
        .Int(StoreChecksum(optimizer_state));
    absl::Status s = c.Exec(
                          "INSERT INTO generations (session_id, generation, proposed_ns, "
                          "responses_told, optimizer_state, optimizer_state_crc32) "
                          "VALUES ($1, $2, $3, $4, $5, $6)",
                          g, "session store: insert into generations")
                         .status();
    if (!s.ok()) return s;
    for (size_t i = 0; i < stimuli.size(); ++i) {
      const StimulusEntry& e = stimuli[i];
      PgParams q;
      q.Text(e.id)
          .Text(session_id)
          .Int(e.sequence)
          .Int(e.generation)
          .Int(static_cast<int64_t>(i))
          .Text(e.origin)
          .Bool(e.is_reference)
          .Bytes(e.png)
          .Int(StoreChecksum(e.png));
      if (e.code.empty()) {
        q.Null().Null();
      } else {
        const std::string code = EncodeArray(e.code);
        q.Bytes(code).Int(StoreChecksum(code));
      }
      q.Int(e.model_version).Double(e.predicted_objective);
      if (i < handed_out) {
        q.Int(now);
      } else {
        q.Null();
      }
      s = c.Exec(
               "INSERT INTO stimuli (id, session_id, sequence, generation, position, "
               "origin, is_reference, png, png_crc32, code, code_crc32, model_version, "
               "predicted_objective, handed_out_ns) "
               "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::bytea, $11::bigint, $12, "
               "$13, $14::bigint)",
               q, "session store: insert into stimuli")
              .status();
      if (!s.ok()) return s;
    }
    return absl::OkStatus();
  });
}

absl::Status PgSessionStore::StimuliHandedOut(const std::string& session_id,
                                              absl::Span<const std::string> stimulus_ids) {
  const int64_t now = Nanos(absl::Now());
  auto handle = pool_->Acquire();
  if (!handle.ok()) return handle.status();
  PgConnection& c = **handle;
  return InSessionTransaction(c, session_id, "update stimuli", [&]() -> absl::Status {
    if (absl::Status s = Fence(c, session_id); !s.ok()) return s;
    for (const std::string& id : stimulus_ids) {
      PgParams p;
      p.Int(now).Text(id).Text(session_id);
      auto r = c.Exec("UPDATE stimuli SET handed_out_ns = $1 WHERE id = $2 AND session_id = $3", p,
                      "session store: update stimuli");
      if (!r.ok()) return r.status();
      if (r->affected() != 1) {
        return absl::NotFoundError(absl::StrCat("session store: stimulus_ids: '", id,
                                                "' is not a stimulus of session '", session_id,
                                                "'"));
      }
    }
    return absl::OkStatus();
  });
}

absl::Status PgSessionStore::ResponsesReported(const std::string& session_id,
                                               const std::string& request_id,
                                               const std::string& content_digest,
                                               absl::Span<const ResponseEntry> responses,
                                               const v1::ReportResponsesAck& ack,
                                               absl::Time received) {
  const std::string ack_bytes = ack.SerializeAsString();
  auto handle = pool_->Acquire();
  if (!handle.ok()) return handle.status();
  PgConnection& c = **handle;
  return InSessionTransaction(c, session_id, "insert into reports", [&]() -> absl::Status {
    if (absl::Status s = Fence(c, session_id); !s.ok()) return s;
    PgParams p;
    p.Text(session_id)
        .Text(request_id)
        .Int(Nanos(received))
        .Int(static_cast<int64_t>(responses.size()))
        .Bytes(ack_bytes)
        .Bytes(content_digest)
        .Int(StoreChecksum(ack_bytes));
    absl::Status s =
        c.Exec(
             "INSERT INTO reports (session_id, request_id, received_ns, responses, ack, "
             "content_digest, ack_crc32) VALUES ($1, $2, $3, $4, $5, $6, $7)",
             p, "session store: insert into reports")
            .status();
    if (absl::IsAlreadyExists(s)) {
      return absl::AlreadyExistsError(absl::StrCat("request_id: ", QuotedEcho(request_id),
                                                   " is already journaled for session '",
                                                   session_id, "'"));
    }
    if (!s.ok()) return s;
    for (const ResponseEntry& r : responses) {
      PgParams q;
      q.Text(session_id).Text(r.stimulus_id).Text(request_id).Int(Nanos(received)).Bool(r.skipped);
      if (r.skipped) {
        q.Null().Null();
      } else {
        const std::string rates = EncodeArray(r.rates);
        q.Bytes(rates).Int(StoreChecksum(rates));
      }
      s = c.Exec(
               "INSERT INTO responses (session_id, stimulus_id, request_id, received_ns, "
               "skipped, rates, rates_crc32) "
               "VALUES ($1, $2, $3, $4, $5, $6::bytea, $7::bigint)",
               q, "session store: insert into responses")
              .status();
      if (!s.ok()) return s;
    }
    return absl::OkStatus();
  });
}

absl::Status PgSessionStore::SessionClosed(const std::string& session_id, absl::Time closed) {
  auto handle = pool_->Acquire();
  if (!handle.ok()) return handle.status();
  PgConnection& c = **handle;
  absl::Status status =
      InSessionTransaction(c, session_id, "update sessions", [&]() -> absl::Status {
        if (absl::Status s = Fence(c, session_id); !s.ok()) return s;
        PgParams p;
        p.Int(Nanos(closed)).Text(session_id);
        auto r = c.Exec("UPDATE sessions SET status = 'closed', closed_ns = $1 WHERE id = $2", p,
                        "session store: update sessions");
        if (!r.ok()) return r.status();
        if (r->affected() != 1) {
          return absl::NotFoundError(
              absl::StrCat("session store: session_id: no session '", session_id, "'"));
        }
        // A closed session needs no owner: any replica may read it.
        PgParams l;
        l.Text(session_id);
        if (absl::Status s = c.Exec("DELETE FROM leases WHERE session_id = $1", l,
                                    "session store: delete from leases")
                                 .status();
            !s.ok()) {
          return s;
        }
        return InsertEvent(c, session_id, kEventClosed, "", closed);
      });
  if (status.ok()) {
    absl::MutexLock lock(&mu_);
    held_.erase(session_id);
  }
  return status;
}

absl::Status PgSessionStore::RecordModelVersion(const std::string& session_id, int64_t version,
                                                absl::string_view metrics_json,
                                                absl::string_view checkpoint, absl::Time created) {
  auto handle = pool_->Acquire();
  if (!handle.ok()) return handle.status();
  PgConnection& c = **handle;
  return InSessionTransaction(c, session_id, "insert into model_versions", [&]() -> absl::Status {
    PgParams p;
    p.Text(session_id)
        .Int(version)
        .Int(Nanos(created))
        .Text(metrics_json)
        .Bytes(checkpoint)
        .Int(StoreChecksum(checkpoint));
    absl::Status s =
        c.Exec(
             "INSERT INTO model_versions (session_id, version, created_ns, metrics_json, "
             "checkpoint, checkpoint_crc32) VALUES ($1, $2, $3, $4, $5, $6)",
             p, "session store: insert into model_versions")
            .status();
    if (absl::IsAlreadyExists(s)) {
      return absl::AlreadyExistsError(
          absl::StrCat("version: session '", session_id, "' already has model version ", version));
    }
    if (absl::IsNotFound(s)) {
      return absl::NotFoundError(absl::StrCat("session_id: no session '", session_id, "'"));
    }
    if (!s.ok()) return s;
    // After the insert: a version of an unknown session is NOT_FOUND above.
    return Fence(c, session_id);
  });
}

absl::Status PgSessionStore::ModelVersionFitted(const std::string& session_id, int64_t version,
                                                const std::map<std::string, double>& metrics,
                                                const std::string& checkpoint) {
  const std::string json = ModelMetricsJson(metrics);
  const absl::Time now = absl::Now();
  if (absl::Status s = RecordModelVersion(session_id, version, json, checkpoint, now); !s.ok()) {
    return s;
  }
  return RecordEvent(session_id, kEventRefitFinished, absl::StrCat("{\"version\": ", version, "}"),
                     now);
}

absl::Status PgSessionStore::RecordEvent(const std::string& session_id, absl::string_view kind,
                                         absl::string_view detail, absl::Time time) {
  auto handle = pool_->Acquire();
  if (!handle.ok()) return handle.status();
  PgConnection& c = **handle;
  return InTransaction(c, "insert into events",
                       [&]() { return InsertEvent(c, session_id, kind, detail, time); });
}

absl::StatusOr<std::vector<std::string>> PgSessionStore::SessionIds(const char* sql) {
  auto handle = pool_->Acquire();
  if (!handle.ok()) return handle.status();
  PgConnection& c = **handle;
  auto rows = c.Exec(sql, "session store: select from sessions");
  if (!rows.ok()) return rows.status();
  std::vector<std::string> ids;
  for (int r = 0; r < rows->rows(); ++r) ids.push_back(rows->Bytes(r, 0));
  return ids;
}

absl::StatusOr<std::vector<std::string>> PgSessionStore::OpenSessionIds() {
  return SessionIds("SELECT id FROM sessions WHERE status = 'open' ORDER BY created_ns, id");
}

absl::StatusOr<std::vector<std::string>> PgSessionStore::AllSessionIds() {
  return SessionIds("SELECT id FROM sessions ORDER BY created_ns, id");
}

}  // namespace stimloop
