#include "server/session_manager.h"

#include <algorithm>
#include <random>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/echo.h"

namespace stimloop {
namespace {

absl::Status NoSession(absl::string_view session_id) {
  return absl::NotFoundError(absl::StrCat("session_id: no session ", QuotedEcho(session_id)));
}

}  // namespace

SessionManager::SessionManager(SessionJournal* journal, int max_open_sessions,
                               AssetsDir assets, WorkPool* pool)
    : journal_(journal),
      max_open_sessions_(max_open_sessions),
      assets_(std::move(assets)),
      pool_(pool) {}

std::string SessionManager::NewId() {
  // Session ids only need to be unique, not reproducible: they are not part
  // of the science, so they do not come from the session seed.
  static thread_local std::mt19937_64 engine(std::random_device{}());
  return absl::StrFormat("%08x", static_cast<uint32_t>(engine()));
}

absl::StatusOr<std::shared_ptr<Session>> SessionManager::Create(
    const v1::SessionConfig& config) {
  auto resolved = ResolveConfig(config);
  if (!resolved.ok()) return resolved.status();
  if (absl::Status s = ConfineAssetPaths(assets_, &*resolved); !s.ok()) return s;
  std::string id;
  {
    absl::MutexLock lock(&mu_);
    int open = 0;
    for (const auto& [unused, session] : sessions_) {
      if (session == nullptr || session->is_open()) ++open;
    }
    if (open >= max_open_sessions_) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "sessions: ", open, " are open, the server allows ", max_open_sessions_,
          " (close one, or start the server with a larger --max_open_sessions)"));
    }
    do {
      id = NewId();
    } while (sessions_.contains(id));
    sessions_.emplace(id, nullptr);  // reserve the id while the session is built
    order_.push_back(id);
  }
  auto session = Session::Create(id, *std::move(resolved), absl::Now(), journal_, pool_);
  absl::MutexLock lock(&mu_);
  if (!session.ok()) {
    sessions_.erase(id);
    order_.erase(std::find(order_.begin(), order_.end(), id));
    return session.status();
  }
  std::shared_ptr<Session> shared = *std::move(session);
  sessions_[id] = shared;
  return shared;
}

absl::Status SessionManager::Adopt(std::shared_ptr<Session> session) {
  absl::MutexLock lock(&mu_);
  if (sessions_.contains(session->id())) {
    return absl::AlreadyExistsError(
        absl::StrCat("session_id: '", session->id(), "' already exists"));
  }
  order_.push_back(session->id());
  sessions_.emplace(session->id(), std::move(session));
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<Session>> SessionManager::Find(const std::string& session_id) {
  {
    absl::MutexLock lock(&mu_);
    auto it = sessions_.find(session_id);
    if (it != sessions_.end() && it->second != nullptr) {
      if (leases_ == nullptr || !it->second->is_open() || leases_->Holds(session_id)) {
        return it->second;
      }
      // The lease lapsed: another replica may have gone on with the
      // session. Reload it (the loader claims the lease again first).
      sessions_.erase(it);
      order_.erase(std::find(order_.begin(), order_.end(), session_id));
      it = sessions_.end();
    }
    if (it != sessions_.end() || !loader_) {  // being created, or nothing to load from
      return NoSession(session_id);
    }
  }
  auto loaded = loader_(session_id);
  if (!loaded.ok()) {
    if (absl::IsNotFound(loaded.status())) {
      return NoSession(session_id);
    }
    return loaded.status();
  }
  absl::MutexLock lock(&mu_);
  auto [it, inserted] = sessions_.emplace(session_id, *loaded);
  if (inserted) {
    order_.push_back(session_id);
  } else if (it->second == nullptr) {
    return NoSession(session_id);
  }
  return it->second;  // a concurrent Find may have loaded it first
}

void SessionManager::Evict(const std::string& session_id) {
  absl::MutexLock lock(&mu_);
  auto it = sessions_.find(session_id);
  if (it == sessions_.end() || it->second == nullptr) return;
  sessions_.erase(it);
  order_.erase(std::find(order_.begin(), order_.end(), session_id));
}

absl::StatusOr<std::vector<std::shared_ptr<Session>>> SessionManager::ListAll() const {
  if (!catalog_ids_) return List();
  auto ids = catalog_ids_();
  if (!ids.ok()) return ids.status();
  std::vector<std::shared_ptr<Session>> out;
  for (auto id = ids->rbegin(); id != ids->rend(); ++id) {
    std::shared_ptr<Session> session;
    {
      absl::MutexLock lock(&mu_);
      auto it = sessions_.find(*id);
      if (it != sessions_.end()) session = it->second;
    }
    if (session == nullptr) {
      auto snapshot = catalog_snapshot_(*id);
      if (!snapshot.ok()) continue;
      session = *std::move(snapshot);
    }
    out.push_back(std::move(session));
  }
  return out;
}

std::vector<std::shared_ptr<Session>> SessionManager::List() const {
  absl::MutexLock lock(&mu_);
  std::vector<std::shared_ptr<Session>> out;
  for (auto it = order_.rbegin(); it != order_.rend(); ++it) {
    const auto& session = sessions_.at(*it);
    if (session != nullptr) out.push_back(session);
  }
  return out;
}

}  // namespace stimloop
