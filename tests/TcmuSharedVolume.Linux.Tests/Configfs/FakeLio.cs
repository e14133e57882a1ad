namespace TcmuSharedVolume.Tests.Configfs;

/// <summary>
/// A configfs tree shaped like LIO's, in a temp dir: real directories, attribute files and the
/// relative symlinks configfs itself creates (configfs_get_target_path climbs to the configfs root,
/// so links read "../../../../../../target/core/user_1/vol1").
/// </summary>
internal sealed class FakeLio : IDisposable
{
    public FakeLio()
    {
        Base = Directory.CreateTempSubdirectory("tsv-lio-").FullName;
        Root = Path.Combine(Base, "config", "target");
        Directory.CreateDirectory(Path.Combine(Root, "core"));
        File.WriteAllText(Path.Combine(Root, "version"), "Target Engine Core ConfigFS Infrastructure v5.0 on Linux/x86_64 on 6.1.0\n");
        Directory.CreateDirectory(Path.Combine(Root, "iscsi", "discovery_auth"));
        ModuleParameters = Directory.CreateDirectory(Path.Combine(Base, "module", "parameters")).FullName;
        File.WriteAllText(Path.Combine(ModuleParameters, "block_netlink"), "0\n");
        File.WriteAllText(Path.Combine(ModuleParameters, "reset_netlink"), "");
    }

    public string Base { get; }

    public string Root { get; }

    public string ModuleParameters { get; }

    public void Dispose() => Directory.Delete(Base, recursive: true);

    public string Backstore(int hba, string name, string config = "sharedvol//srv/vol.img", long size = 1 << 30)
    {
        var dir = Path.Combine(Root, "core", $"user_{hba}", name);
        Write(dir, "info",
            "Status: ACTIVATED  Max Queue Depth: 128  SectorSize: 512  HwMaxSectors: 128\n" +
            $"        Config: {config} Size: {size} MaxDataAreaMB: 1024 DataPagesPerBlk: 1 CmdRingSizeMB: 8\n");
        Write(dir, "attrib/pgr_support", "1\n");
        Write(dir, "attrib/emulate_pr", "1\n");
        Write(dir, "attrib/tmr_notification", "0\n");
        Write(dir, "attrib/hw_block_size", "512\n");
        Write(dir, "attrib/dev_size", $"{size}\n");
        Write(dir, "attrib/dev_config", config + "\n");
        Write(dir, "wwn/vpd_unit_serial", "T10 VPD Unit Serial Number: 6a2b9c1e-5f00-4e61-9b0a-1c2d3e4f5a6b\n");
        Write(dir, "action/block_dev", "unblocked\n");
        Write(dir, "action/reset_ring", "");
        return dir;
    }

    public string Tpg(string fabric, string wwn, ushort tpgt = 1, bool demoMode = false)
    {
        var dir = Path.Combine(Root, fabric, wwn, $"tpgt_{tpgt}");
        Directory.CreateDirectory(Path.Combine(dir, "lun"));
        Directory.CreateDirectory(Path.Combine(dir, "acls"));
        Write(dir, "attrib/generate_node_acls", demoMode ? "1\n" : "0\n");
        Write(dir, "enable", "1\n");
        return dir;
    }

    /// <summary>lun/lun_L with a storage-object link named like rtslib's (10 hex digits).</summary>
    public string Lun(string tpgDir, int lun, int hba, string backstore, int? rtpi = null)
    {
        var dir = Directory.CreateDirectory(Path.Combine(tpgDir, "lun", $"lun_{lun}")).FullName;
        Write(dir, "alua_tg_pt_gp", "TG Port Alias: default_tg_pt_gp\n");
        if (rtpi is { } r) Write(dir, "statistics/scsi_port/indx", $"{r}\n");
        File.CreateSymbolicLink(Path.Combine(dir, $"{Math.Abs(HashCode.Combine(backstore, lun)) % 0xFFFFFFFFFL:x10}"),
            Up(dir) + $"target/core/user_{hba}/{backstore}");
        return dir;
    }

    /// <summary>acls/&lt;initiator&gt;/lun_M linking the TPG LUN, plus the ACL's info file.</summary>
    public string Acl(string tpgDir, string initiator, int mappedLun, string? tpgLunDir, string? info = null)
    {
        var acl = Directory.CreateDirectory(Path.Combine(tpgDir, "acls", initiator)).FullName;
        Write(acl, "info", info ?? $"No active iSCSI Session for Initiator Endpoint: {initiator}\n");
        if (tpgLunDir is not null)
        {
            var mapped = Directory.CreateDirectory(Path.Combine(acl, $"lun_{mappedLun}")).FullName;
            Write(mapped, "write_protect", "0\n");
            File.CreateSymbolicLink(Path.Combine(mapped, "c6a7b8d9e0"), Up(mapped) + Path.GetRelativePath(Path.GetDirectoryName(Root)!, tpgLunDir));
        }
        return acl;
    }

    public static string LoggedInInfo(string initiator) =>
        $"InitiatorName: {initiator}\nInitiatorAlias: node\n" +
        "LIO Session ID: 2   ISID: 0x80 12 34 56 dd 65  TSIH: 2  SessionType: Normal\n" +
        "Session State: TARG_SESS_STATE_LOGGED_IN\n" +
        "---------------------[iSCSI Session Values]-----------------------\n" +
        "  CmdSN/WR  :  CmdSN/WC  :  ExpCmdSN  :  MaxCmdSN  :     ITT    :     TTT\n" +
        " 0x00000040   0x00000040   0x0000001a   0x00000059   0x00000069   0x000000df\n" +
        "----------------------[iSCSI Connections]-------------------------\n" +
        "CID: 0  Connection State: TARG_CONN_STATE_LOGGED_IN\n" +
        "   Address 192.168.200.50 TCP  StatSN: 0x6916c3e9\n";

    public static void Write(string dir, string relative, string content)
    {
        var path = Path.Combine(dir, relative);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, content);
    }

    /// <summary>"../" once per level from <paramref name="dir"/> up to the configfs root (the parent of target/).</summary>
    private string Up(string dir)
    {
        var rel = Path.GetRelativePath(Path.GetDirectoryName(Root)!, dir);
        return string.Concat(Enumerable.Repeat("../", rel.Split('/').Length));
    }
}
