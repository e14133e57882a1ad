using TcmuSharedVolume.Scsi;

namespace TcmuSharedVolume.Linux.Configfs;

/// <summary>
/// A fabric TPG LUN that links a backstore: <c>&lt;fabric&gt;/&lt;wwn&gt;/tpgt_&lt;T&gt;/lun/lun_&lt;L&gt;</c>.
/// </summary>
/// <param name="RelativeTargetPortId">From the LUN's <c>statistics/scsi_port/indx</c>, else the TPG's
/// <c>rtpi</c> (Linux 6.4+), else derived from the TPGT (see <see cref="TargetConfigfs"/>).</param>
public sealed record FabricLun(string Fabric, string Wwn, ushort Tpgt, int Lun, string TpgPath, string LunPath, ushort RelativeTargetPortId);

/// <summary>
/// Which I_T nexus a backstore serves. Exactly one of <see cref="Nexus"/> and
/// <see cref="UnboundReason"/> is set. An unbound path still serves I/O; PR OUT on it fails
/// (docs/architecture.md §4).
/// </summary>
public sealed record NexusBinding
{
    public ItNexus? Nexus { get; init; }

    /// <summary>One sentence saying why there is no nexus and what to change.</summary>
    public string? UnboundReason { get; init; }

    /// <summary>True when the cfgstring's initiator=/target=/rtpi= decided some part of it.</summary>
    public bool FromConfigString { get; init; }

    /// <summary>The LUN the nexus goes through, when configfs shows one.</summary>
    public FabricLun? Lun { get; init; }

    /// <summary>iSCSI: the ACL directory whose <c>info</c> tells whether the initiator is logged in.</summary>
    public string? AclPath { get; init; }

    /// <summary>Something the administrator should know although binding succeeded.</summary>
    public string? Warning { get; init; }

    public bool IsBound => Nexus is not null;

    public static NexusBinding Unbound(string reason) => new() { UnboundReason = reason };
}

/// <summary>What an iSCSI ACL's <c>info</c> says about its session (<c>lio_target_nacl_info_show</c>).</summary>
/// <param name="Isid">The session's ISID as 12 hex digits, when logged in.</param>
public sealed record IscsiSessionInfo(bool Active, string? Isid, string? State)
{
    /// <summary>LIO's session number ("LIO Session ID"), new for every login: a logout and a
    /// login between two looks show up as a different number.</summary>
    public string? SessionId { get; init; }

    public static readonly IscsiSessionInfo None = new(false, null, null);

    public static IscsiSessionInfo Parse(string text)
    {
        // LIO prints exactly this sentence when the ACL has no session.
        if (text.Contains("No active iSCSI Session for Initiator Endpoint", StringComparison.Ordinal))
            return None;
        string? isid = null;
        var m = System.Text.RegularExpressions.Regex.Match(text, @"ISID: 0x((?:[0-9a-fA-F]{2} ?){6})");
        if (m.Success) isid = m.Groups[1].Value.Replace(" ", "", StringComparison.Ordinal).ToLowerInvariant();
        var s = System.Text.RegularExpressions.Regex.Match(text, @"Session State: (\S+)");
        string? state = s.Success ? s.Groups[1].Value : null;
        bool loggedIn = text.Contains("InitiatorName:", StringComparison.Ordinal);
        // FAILED and FREE are sessions being torn down: the nexus is gone for PR purposes.
        bool active = loggedIn && state is not ("TARG_SESS_STATE_FAILED" or "TARG_SESS_FREE");
        var sid = System.Text.RegularExpressions.Regex.Match(text, @"LIO Session ID: (\d+)");
        return new IscsiSessionInfo(active, isid, state) { SessionId = sid.Success ? sid.Groups[1].Value : null };
    }
}
