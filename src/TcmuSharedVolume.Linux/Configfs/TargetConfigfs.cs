using System.Globalization;
using TcmuSharedVolume.Scsi;
using TcmuSharedVolume.Volumes;

namespace TcmuSharedVolume.Linux.Configfs;

/// <summary>
/// LIO's configfs tree (<c>/sys/kernel/config/target</c>) as the daemon needs it: user backstores,
/// the fabric LUNs and ACLs that decide which I_T nexus a backstore serves, iSCSI session state,
/// and target_core_user's module parameters. Both roots are injectable so that tests run against
/// fake trees of real directories, files and relative symlinks shaped like LIO's.
/// <para>Relative target port identifier: LIO shows it per LUN in
/// <c>lun/lun_L/statistics/scsi_port/indx</c> (decimal, every kernel; <c>target_stat_port_indx_show</c>)
/// and, from Linux 6.4, per TPG in <c>tpgt_T/rtpi</c> (<c>%#x</c>). When neither can be read the
/// RTPI is derived as the TPGT (1 for TPGT 0), so it stays stable across restarts.</para>
/// </summary>
public sealed class TargetConfigfs(string root = TargetConfigfs.DefaultRoot, string moduleParameters = TargetConfigfs.DefaultModuleParameters)
{
    public const string DefaultRoot = "/sys/kernel/config/target";
    public const string DefaultModuleParameters = "/sys/module/target_core_user/parameters";

    public string Root { get; } = Path.TrimEndingDirectorySeparator(Path.GetFullPath(root));

    public string ModuleParameters { get; } = moduleParameters;

    public bool IsMounted => Directory.Exists(Path.Combine(Root, "core"));

    public UserBackstore Backstore(int hbaIndex, string name) =>
        new(Path.Combine(Root, "core", $"user_{hbaIndex}", name), hbaIndex, name);

    // ---- target_core_user module parameters (docs/tcmu.md §7, §9, §13) ----

    /// <summary>While set, new netlink requests fail with EAGAIN; required before <see cref="ResetNetlink"/>.</summary>
    public void SetBlockNetlink(bool block) => ConfigfsFile.Write(Path.Combine(ModuleParameters, "block_netlink"), block ? "1" : "0");

    public bool? IsNetlinkBlocked => ConfigfsFile.ReadLong(Path.Combine(ModuleParameters, "block_netlink")) is { } v ? v != 0 : null;

    /// <summary>Fails every netlink request the kernel waits on with EINTR (a configfs write stuck since a previous daemon died).</summary>
    public void ResetNetlink() => ConfigfsFile.Write(Path.Combine(ModuleParameters, "reset_netlink"), "1");

    /// <summary>
    /// What libtcmu does at start: block, reset, unblock, so that an <c>enable</c> or <c>rmdir</c> that waits
    /// uninterruptibly for a reply nobody will send is released. Returns a reason when the parameters are missing.
    /// </summary>
    public (bool Ok, string? Reason) ReleaseStuckNetlinkRequests()
    {
        if (!File.Exists(Path.Combine(ModuleParameters, "reset_netlink")))
            return (false, $"{ModuleParameters}/reset_netlink does not exist: target_core_user is not loaded or too old");
        try
        {
            SetBlockNetlink(true);
            ResetNetlink();
            SetBlockNetlink(false);
            return (true, null);
        }
        catch (IOException e)
        {
            return (false, $"cannot reset target_core_user's netlink requests: {e.Message}");
        }
    }

    // ---- nexus binding ----

    /// <summary>Every fabric TPG LUN whose storage-object symlink points at the backstore.</summary>
    public IReadOnlyList<FabricLun> FindLuns(int hbaIndex, string name)
    {
        var backstore = Path.TrimEndingDirectorySeparator(Path.GetFullPath(Backstore(hbaIndex, name).Path));
        var found = new List<FabricLun>();
        foreach (var fabricDir in ConfigfsFile.Dirs(Root))
        {
            var fabric = Path.GetFileName(fabricDir);
            if (fabric == "core") continue;
            foreach (var wwnDir in ConfigfsFile.Dirs(fabricDir))
            {
                foreach (var tpgDir in ConfigfsFile.Dirs(wwnDir, "tpgt_"))
                {
                    if (!ushort.TryParse(Path.GetFileName(tpgDir).AsSpan(5), NumberStyles.None, CultureInfo.InvariantCulture, out var tpgt))
                        continue;
                    foreach (var lunDir in ConfigfsFile.Dirs(Path.Combine(tpgDir, "lun"), "lun_"))
                    {
                        if (!int.TryParse(Path.GetFileName(lunDir).AsSpan(4), NumberStyles.None, CultureInfo.InvariantCulture, out var lun))
                            continue;
                        if (!ConfigfsFile.Links(lunDir).Any(l => ConfigfsFile.LinkTarget(l) == backstore))
                            continue;
                        found.Add(new FabricLun(fabric, Path.GetFileName(wwnDir), tpgt, lun, tpgDir, lunDir, ReadRtpi(tpgDir, lunDir, tpgt)));
                    }
                }
            }
        }
        return found;
    }

    /// <summary>
    /// Resolves the one I_T nexus a backstore serves, from configfs and the cfgstring's explicit
    /// <c>initiator=</c>/<c>target=</c>/<c>rtpi=</c> (which win). iSCSI and other ACL-based fabrics:
    /// the ACLs whose mapped LUN links to the backstore's TPG LUN; tcm_loop (and vhost): the TPG's
    /// <c>nexus</c>. Anything but exactly one (initiator, target port) pair is unbound, with a reason.
    /// </summary>
    public NexusBinding ResolveNexus(int hbaIndex, string name, VolumeConfig? config = null)
    {
        var luns = FindLuns(hbaIndex, name);
        // Demo mode gives every initiator that logs in a generated ACL mapping every LUN of the
        // TPG: nobody can tell which initiator sends a command into this ring, whatever the ACLs
        // or the cfgstring say, so the path gets no PR identity at all.
        foreach (var lun in luns)
        {
            if (IsDemoMode(lun))
                return NexusBinding.Unbound($"backstore {name} is linked from {lun.Fabric} {lun.Wwn} tpgt_{lun.Tpgt} lun_{lun.Lun}, a TPG in demo mode (generate_node_acls=1) that any initiator can reach: set generate_node_acls=0 and map the LUN through one ACL");
        }
        var candidates = new List<Candidate>();
        var problems = new List<string>();
        foreach (var lun in luns)
            CollectCandidates(lun, candidates, problems);

        bool explicitInitiator = config?.Initiator is not null;
        bool explicitTarget = config?.TargetPortName is not null;
        if (explicitInitiator || explicitTarget || config?.RelativeTargetPortId is not null)
            return ResolveExplicit(name, config!, luns, candidates, problems);

        if (luns.Count == 0)
            return NexusBinding.Unbound($"backstore {name} (user_{hbaIndex}) is not linked to any LUN yet");
        var distinct = candidates.DistinctBy(c => (c.Initiator, c.Target.Name)).ToList();
        if (distinct.Count == 1)
        {
            var c = distinct[0];
            return new NexusBinding { Nexus = new ItNexus(c.Initiator, c.Target), Lun = c.Lun, AclPath = c.AclPath };
        }
        if (distinct.Count == 0)
            return NexusBinding.Unbound(string.Join("; ", problems.Distinct()));
        return NexusBinding.Unbound(Ambiguity(name, distinct));
    }

    private NexusBinding ResolveExplicit(string name, VolumeConfig config, IReadOnlyList<FabricLun> luns, List<Candidate> candidates, List<string> problems)
    {
        // Initiator: the cfgstring's, else the only one configfs shows.
        InitiatorPort? initiator = config.Initiator;
        if (initiator is null)
        {
            var initiators = candidates.Select(c => c.Initiator).Distinct().ToList();
            if (initiators.Count != 1)
                return NexusBinding.Unbound(initiators.Count == 0
                    ? (luns.Count == 0 ? $"backstore {name} is not linked to any LUN yet and the cfgstring has no initiator=" : string.Join("; ", problems.Distinct()))
                    : Ambiguity(name, candidates.DistinctBy(c => (c.Initiator, c.Target.Name)).ToList()));
            initiator = initiators[0];
        }

        // Target port: the cfgstring's, else the only one linking the backstore.
        var ports = luns.Select(l => (Lun: l, Port: TargetPortOf(l, FabricProtocol(l.Fabric) ?? initiator.Protocol))).DistinctBy(p => p.Port.Name).ToList();
        FabricLun? lun;
        TargetPort target;
        if (config.TargetPortName is { } targetName)
        {
            lun = ports.FirstOrDefault(p => string.Equals(p.Port.Name, targetName, StringComparison.OrdinalIgnoreCase)).Lun;
            var protocol = config.TargetProtocol ?? initiator.Protocol;
            target = new TargetPort(protocol, targetName, config.RelativeTargetPortId ?? lun?.RelativeTargetPortId ?? 1);
        }
        else if (ports.Count == 1)
        {
            lun = ports[0].Lun;
            target = ports[0].Port with { RelativeTargetPortId = config.RelativeTargetPortId ?? ports[0].Port.RelativeTargetPortId };
        }
        else
        {
            return NexusBinding.Unbound(ports.Count == 0
                ? $"backstore {name} has initiator= but is not linked to any LUN yet: link it, or add target= to the cfgstring"
                : $"backstore {name} is reached through {ports.Count} target ports ({string.Join(", ", ports.Select(p => p.Port.Name))}): add target= to the cfgstring");
        }

        // An naa. name is a valid iSCSI name too: the target port decides the protocol.
        if (target.Protocol != initiator.Protocol)
            initiator = new InitiatorPort(target.Protocol, PortNames.NormaliseName(target.Protocol, initiator.Name));

        string? warning = null;
        var configured = candidates.Select(c => c.Initiator).Distinct().Where(i => !i.Equals(initiator)).ToList();
        if (config.Initiator is not null && configured.Count > 0)
            warning = $"cfgstring initiator={initiator.Name} overrides configfs, where {string.Join(", ", configured.Select(i => i.Name))} reach backstore {name}";

        string? acl = lun is not null && target.Protocol == ProtocolId.Iscsi ? FindAcl(lun.TpgPath, initiator.Name) : null;
        return new NexusBinding
        {
            Nexus = new ItNexus(initiator, target),
            FromConfigString = true,
            Lun = lun,
            AclPath = acl,
            Warning = warning,
        };
    }

    private static string Ambiguity(string name, List<Candidate> distinct)
    {
        var targets = distinct.Select(c => c.Target.Name).Distinct().ToList();
        if (targets.Count > 1)
            return $"backstore {name} is reached through {targets.Count} target ports ({string.Join(", ", targets)}): one backstore must serve exactly one I_T nexus";
        var initiators = distinct.Select(c => c.Initiator.Name).ToList();
        return $"backstore {name} is mapped by {initiators.Count} ACLs ({string.Join(", ", initiators)}): one backstore must serve exactly one initiator";
    }

    private void CollectCandidates(FabricLun lun, List<Candidate> candidates, List<string> problems)
    {
        var where = $"{lun.Fabric} {lun.Wwn} tpgt_{lun.Tpgt} lun_{lun.Lun}";
        var nexusFile = Path.Combine(lun.TpgPath, "nexus");
        if (File.Exists(nexusFile))
        {
            // tcm_loop, vhost: one emulated initiator port per TPG. Reading fails (ENODEV) when none is set.
            var initiatorName = ConfigfsFile.ReadLine(nexusFile);
            if (string.IsNullOrEmpty(initiatorName))
            {
                problems.Add($"backstore is linked from {where}, but that TPG has no nexus yet: write an initiator WWN to its nexus file");
                return;
            }
            if (PortNames.ProtocolOfName(initiatorName) is not { } protocol)
            {
                problems.Add($"the nexus of {where} is '{initiatorName}', which is not a naa., fc. or iqn. name");
                return;
            }
            candidates.Add(new Candidate(new InitiatorPort(protocol, PortNames.NormaliseName(protocol, initiatorName)), TargetPortOf(lun, protocol), lun, null));
            return;
        }

        if (FabricProtocol(lun.Fabric) is not { } fabricProtocol)
        {
            problems.Add($"backstore is linked from {where}, a fabric whose initiator cannot be read from configfs: give initiator= and target= in the cfgstring");
            return;
        }
        int before = candidates.Count;
        var lunPath = Path.TrimEndingDirectorySeparator(Path.GetFullPath(lun.LunPath));
        foreach (var aclDir in ConfigfsFile.Dirs(Path.Combine(lun.TpgPath, "acls")))
        {
            foreach (var mapped in ConfigfsFile.Dirs(aclDir, "lun_"))
            {
                if (!ConfigfsFile.Links(mapped).Any(l => ConfigfsFile.LinkTarget(l) == lunPath)) continue;
                var initiatorName = Path.GetFileName(aclDir);
                candidates.Add(new Candidate(
                    new InitiatorPort(fabricProtocol, PortNames.NormaliseName(fabricProtocol, initiatorName)),
                    TargetPortOf(lun, fabricProtocol), lun, aclDir));
            }
        }
        if (candidates.Count > before) return;
        problems.Add($"backstore is linked from {where}, but no ACL maps that LUN yet");
    }

    /// <summary>An ACL-based TPG (no <c>nexus</c> file) with generate_node_acls=1.</summary>
    private static bool IsDemoMode(FabricLun lun) =>
        !File.Exists(Path.Combine(lun.TpgPath, "nexus"))
        && ConfigfsFile.ReadLong(Path.Combine(lun.TpgPath, "attrib", "generate_node_acls")) == 1;

    private static TargetPort TargetPortOf(FabricLun lun, ProtocolId protocol) =>
        protocol == ProtocolId.Iscsi && lun.Fabric == "iscsi"
            ? new TargetPort(ProtocolId.Iscsi, PortNames.IscsiTargetPortName(lun.Wwn, lun.Tpgt), lun.RelativeTargetPortId)
            : new TargetPort(protocol, lun.Wwn, lun.RelativeTargetPortId);

    private static ProtocolId? FabricProtocol(string fabric) => fabric switch
    {
        "iscsi" => ProtocolId.Iscsi,
        "qla2xxx" or "tcm_qla2xxx" or "fc" or "tcm_fc" or "efct" => ProtocolId.FibreChannel,
        "srpt" or "ib_srpt" => ProtocolId.Srp,
        "sbp" => ProtocolId.Sbp,
        _ => null,
    };

    private static ushort ReadRtpi(string tpgDir, string lunDir, ushort tpgt)
    {
        if (ConfigfsFile.ReadLong(Path.Combine(lunDir, "statistics", "scsi_port", "indx")) is { } indx and > 0 and <= ushort.MaxValue)
            return (ushort)indx;
        if (ConfigfsFile.ReadLong(Path.Combine(tpgDir, "rtpi")) is { } rtpi and > 0 and <= ushort.MaxValue)
            return (ushort)rtpi;
        return tpgt == 0 ? (ushort)1 : tpgt;
    }

    // ---- iSCSI sessions: detecting I_T nexus loss ----

    /// <summary>The ACL directory in a TPG whose name is this initiator (iSCSI names compare case-insensitively).</summary>
    private static string? FindAcl(string tpgPath, string initiatorName) =>
        ConfigfsFile.Dirs(Path.Combine(tpgPath, "acls"))
            .FirstOrDefault(d => string.Equals(Path.GetFileName(d), initiatorName, StringComparison.OrdinalIgnoreCase));

    public static IscsiSessionInfo ReadIscsiSession(string aclPath) =>
        ConfigfsFile.Read(Path.Combine(aclPath, "info")) is { } text ? IscsiSessionInfo.Parse(text) : IscsiSessionInfo.None;

    /// <summary>Whether the initiator has a live iSCSI session through any ACL of any target.</summary>
    public bool IsSessionActive(string initiatorName)
    {
        foreach (var target in ConfigfsFile.Dirs(Path.Combine(Root, "iscsi")))
            foreach (var tpg in ConfigfsFile.Dirs(target, "tpgt_"))
                if (FindAcl(tpg, initiatorName) is { } acl && ReadIscsiSession(acl).Active)
                    return true;
        return false;
    }

    /// <summary>
    /// Whether the bound nexus still exists: the iSCSI ACL has a session, or the tcm_loop TPG still
    /// has this initiator as its nexus. Null when configfs cannot tell (other fabrics).
    /// </summary>
    public bool? IsNexusActive(NexusBinding binding)
    {
        if (binding.Nexus is not { } nexus || binding.Lun is not { } lun) return null;
        if (binding.AclPath is { } acl && nexus.Initiator.Protocol == ProtocolId.Iscsi)
            return ReadIscsiSession(acl).Active;
        var nexusFile = Path.Combine(lun.TpgPath, "nexus");
        if (File.Exists(nexusFile))
            return string.Equals(ConfigfsFile.ReadLine(nexusFile), nexus.Initiator.Name, StringComparison.OrdinalIgnoreCase);
        return null;
    }

    private sealed record Candidate(InitiatorPort Initiator, TargetPort Target, FabricLun Lun, string? AclPath);
}
