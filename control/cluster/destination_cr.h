// DestinationCr: the Destination custom resource (destination.connectivity.api.sap/v1) as the
// reconciler reads it, and the names and objects mailring derives from it. Pure functions: JSON
// in, JSON out, no I/O, so the rules are unit-tested on their own.
//
//   metadata.name/namespace/uid/generation/resourceVersion/deletionTimestamp/finalizers
//   metadata.annotations["transparent-proxy.connectivity.api.sap/tenant-subdomains"]: JSON array
//   spec.destinationRef.name, spec.destinationServiceInstanceName, spec.service.port (absent:
//   the default port of the destination's protocol, proto::DefaultServicePort())
//
// For every (CR, tenant) two Services:
//  - the managed Service, in mailring's namespace: selects the DaemonSet's pods,
//    internalTrafficPolicy Local, port = the CR's port (or its protocol's), targetPort = a port from the leader's
//    range; labelled app.kubernetes.io/managed-by=mailring and annotated with the CR's identity.
//    Every pod builds its route table from these: they are the record of port allocation.
//  - the client Service, named after the CR (or <cr>-<tenant>) in the CR's namespace: an
//    ExternalName to the managed Service's cluster DNS name, so `telnet <cr>.<ns> 143` works
//    from any namespace (ExternalName is a CNAME; the port is the managed Service's).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace mailring::control {

inline constexpr std::string_view kTenantAnnotation =
    "transparent-proxy.connectivity.api.sap/tenant-subdomains";
inline constexpr std::string_view kManagedByLabel = "app.kubernetes.io/managed-by";
inline constexpr std::string_view kManagedByValue = "mailring";
inline constexpr std::string_view kFinalizer = "destination.connectivity.api.sap/mailring";
inline constexpr std::string_view kAnnotationPrefix = "mailring.io/";

struct DestinationCr {
  std::string namespace_name;
  std::string name;
  std::string uid;
  int64_t generation = 0;
  std::string resource_version;
  bool deleting = false;  // metadata.deletionTimestamp is set
  std::vector<std::string> finalizers;
  std::string destination_name;   // spec.destinationRef.name
  std::string instance;           // spec.destinationServiceInstanceName ("" → default)
  int port = 0;                   // spec.service.port; 0: not set (the protocol's default)
  // The tenant annotation: absent → one tenant "" (single-tenant); a valid JSON array of DNS
  // labels → those; anything else → tenants_error says why (the CR gets
  // ConfigurationError-MultitenancyAnnotation-Invalid, nothing is guessed).
  std::vector<std::string> tenants;
  std::string tenants_error;
};

absl::StatusOr<DestinationCr> ParseDestinationCr(std::string_view json);

bool IsDns1035Label(std::string_view name);

// The client Service's name: the CR's name, or <cr>-<tenant>. InvalidArgument when that is not
// a DNS-1035 label (e.g. longer than 63 characters).
absl::StatusOr<std::string> ClientServiceName(const DestinationCr& cr, std::string_view tenant);

// The managed Service's name: stable, unique per (namespace, CR, tenant), a DNS-1035 label:
// "mr-" + readable part + "-" + 10 hex digits of a hash.
std::string ManagedServiceName(std::string_view cr_namespace, std::string_view cr_name,
                               std::string_view tenant);

struct ManagedServiceSpec {
  std::string name;
  std::string mailring_namespace;
  std::string cr_namespace;
  std::string cr_name;
  std::string cr_uid;
  std::string tenant;
  std::string destination_name;
  std::string instance;
  int port = 143;
  std::string port_name = "imap";  // the protocol family: imap, smtp, pop3
  int target_port = 0;
};

std::string ManagedServiceJson(const ManagedServiceSpec& spec);
std::string ClientServiceJson(const ManagedServiceSpec& spec, std::string_view client_name,
                              std::string_view cluster_domain);
// A merge patch that sets a Service's one port (name, protocol, port and, when `target_port`,
// targetPort): a CR's port changed.
std::string ServicePortsPatchJson(const ManagedServiceSpec& spec, bool target_port);

// A managed Service read back from the API (or from the informer).
struct ManagedService {
  std::string name;
  std::string resource_version;
  std::string cr_namespace;
  std::string cr_name;
  std::string cr_uid;
  std::string tenant;
  std::string destination_name;
  std::string instance;
  int port = 0;
  int target_port = 0;
};
// NotFound when the Service is not managed by mailring (no label): foreign, never touched.
absl::StatusOr<ManagedService> ParseManagedService(std::string_view json);

struct TenantStatus {
  std::string name;  // the tenant's subdomain ("" for a single-tenant CR)
  std::string service_name;
  std::string status;   // "Available" / "Error"
  std::string message;
};

// The status subresource body (PUT .../status) with condition Available.
std::string StatusJson(const DestinationCr& cr, bool available, std::string_view reason,
                       std::string_view message, const std::vector<TenantStatus>& tenants,
                       std::string_view now_rfc3339);

// A merge patch that sets a CR's finalizers, guarded by `resource_version` unless empty.
std::string FinalizersPatchJson(std::string_view resource_version,
                                const std::vector<std::string>& finalizers);

}  // namespace mailring::control
