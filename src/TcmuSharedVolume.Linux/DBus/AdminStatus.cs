using System.Text.Json;
using System.Text.Json.Serialization;

namespace TcmuSharedVolume.Linux.DBus;

// What Admin1.GetStatusJson returns. The daemon fills these records, the service serialises
// them and tsvctl reads them back with the same types, so both ends agree on one schema.

/// <summary>The daemon and every volume it serves.</summary>
public sealed record AdminStatus(string Version, IReadOnlyList<VolumeStatus> Volumes)
{
    /// <summary>Seconds since the daemon started, when the counters were read: rates between two
    /// statuses divide by its difference (tsvctl status --watch).</summary>
    public double? UptimeSeconds { get; init; }

    /// <summary>Upper bounds (seconds) of the paths' latency buckets; +Inf follows the last.</summary>
    public IReadOnlyList<double>? LatencyBucketBounds { get; init; }
}

/// <summary>One shared volume: its identity, its paths (one per I_T nexus) and its reservation table.</summary>
public sealed record VolumeStatus(
    string BackingPath,
    string UnitSerial,
    long SizeBytes,
    int BlockSize,
    IReadOnlyList<PathStatus> Paths,
    ReservationStatus Reservations)
{
    /// <summary>An RBD volume's table shared with other hosts; null for a table of this host alone.</summary>
    public SharedTableStatus? Shared { get; init; }
}

/// <summary>
/// The reservation table several hosts share (docs/reservations.md §18): its version (every
/// committed change adds one), its RADOS object, and the hosts recorded in it.
/// <see cref="HostsError"/> says why the hosts could not be read (this host fenced, rejoining).
/// </summary>
public sealed record SharedTableStatus(ulong Version, string TableObject, IReadOnlyList<TableHostStatus> Hosts)
{
    public string? HostsError { get; init; }
}

/// <summary>
/// A host recorded in the table's object. State: "serving" (watches the table and answered),
/// "not answering" (watches it but did not answer within a second), "gone" (a stale record of a
/// client that stopped or was fenced; removed when a host next joins).
/// </summary>
public sealed record TableHostStatus(ulong Client, int? HostId, string? HostName, string? Since, string Address, string State, bool ThisHost);

/// <summary>One backstore of a volume; Initiator is null when its nexus could not be bound.</summary>
public sealed record PathStatus(string Backstore, string? Initiator, string? TargetPort, string? UnboundReason)
{
    /// <summary>What the path has done since the daemon started (null from a daemon that does not count).</summary>
    public PathCounters? Counters { get; init; }
}

/// <summary>A path's counters (docs/operations.md §13): commands finished, bytes moved, commands
/// running now, and the latency histogram as per-bucket counts (+Inf last).</summary>
public sealed record PathCounters(long Commands, long ReadBytes, long WrittenBytes, long InFlight, IReadOnlyList<long> LatencyBuckets);

/// <summary>
/// SPC-4 state as READ FULL STATUS would report it. Keys are 16 hex digits. Type is the SPC-4
/// name (e.g. "Write Exclusive - Registrants Only"); Holder is null for the all-registrants types.
/// </summary>
public sealed record ReservationStatus(
    uint Generation,
    bool Aptpl,
    IReadOnlyList<RegistrationStatus> Registrations,
    PersistentReservationStatus? Reservation,
    string? Spc2ReservedBy);

public sealed record RegistrationStatus(string Initiator, string? TargetPort, string Key);

public sealed record PersistentReservationStatus(string Type, string? Holder, string Key);

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower, WriteIndented = true,
    DefaultIgnoreCondition = JsonIgnoreCondition.Never)]
[JsonSerializable(typeof(AdminStatus))]
[JsonSerializable(typeof(VolumeStatus))]
public sealed partial class AdminJsonContext : JsonSerializerContext
{
    public static string Serialize(AdminStatus status) => JsonSerializer.Serialize(status, Default.AdminStatus);

    /// <summary>Throws <see cref="JsonException"/> on text that is not an AdminStatus.</summary>
    public static AdminStatus Deserialize(string json) =>
        JsonSerializer.Deserialize(json, Default.AdminStatus) ?? throw new JsonException("status is null");
}
