namespace TcmuSharedVolume.Scsi;

/// <summary>SPC-4 7.6.1 protocol identifiers, as used in TransportIDs.</summary>
public enum ProtocolId : byte
{
    FibreChannel = 0x0,
    Sbp = 0x3,
    Srp = 0x4,
    Iscsi = 0x5,
    Sas = 0x6,
}

/// <summary>
/// An initiator port. For iSCSI <see cref="Name"/> is the iSCSI name in lower case; the ISID is
/// kept for READ FULL STATUS but is not part of the identity, so that a node that logs in again
/// with a new ISID keeps its registration (fence-agents #517).
/// </summary>
public sealed record InitiatorPort(ProtocolId Protocol, string Name, string? Isid = null)
{
    public bool Equals(InitiatorPort? other) =>
        other is not null && other.Protocol == Protocol && string.Equals(other.Name, Name, StringComparison.OrdinalIgnoreCase);

    public override int GetHashCode() => HashCode.Combine(Protocol, StringComparer.OrdinalIgnoreCase.GetHashCode(Name));
}

/// <summary>A target port: its name (iSCSI: target IQN + ",t,0x" + TPGT) and relative target port identifier.</summary>
public sealed record TargetPort(ProtocolId Protocol, string Name, ushort RelativeTargetPortId);

/// <summary>
/// An I_T nexus: who sent a command, through which target port. One TCMU backstore serves exactly
/// one nexus (docs/architecture.md §3), so the path a command arrives on tells us its nexus.
/// </summary>
public sealed record ItNexus(InitiatorPort Initiator, TargetPort Target)
{
    public override string ToString() => $"{Initiator.Name} -> {Target.Name}";
}
