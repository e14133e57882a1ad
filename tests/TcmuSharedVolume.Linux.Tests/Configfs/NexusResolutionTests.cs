using TcmuSharedVolume.Linux.Configfs;
using TcmuSharedVolume.Scsi;
using TcmuSharedVolume.Volumes;

namespace TcmuSharedVolume.Tests.Configfs;

public sealed class NexusResolutionTests : IDisposable
{
    private const string Target = "iqn.2003-01.org.linux-iscsi.storage1.x8664:sn.0123456789ab";
    private const string NodeA = "iqn.1994-05.com.redhat:node-a";
    private const string NodeB = "iqn.1994-05.com.redhat:node-b";

    private readonly FakeLio _lio = new();
    private readonly TargetConfigfs _cfs;

    public NexusResolutionTests() => _cfs = new TargetConfigfs(_lio.Root, _lio.ModuleParameters);

    public void Dispose() => _lio.Dispose();

    /// <summary>docs/architecture.md §3, §4: one iSCSI target, two backstores on one file, each ACL maps LUN 0 to its own.</summary>
    private string IscsiTwoPaths()
    {
        _lio.Backstore(1, "vol1-a");
        _lio.Backstore(2, "vol1-b");
        var tpg = _lio.Tpg("iscsi", Target);
        var lunA = _lio.Lun(tpg, 0, 1, "vol1-a", rtpi: 3);
        var lunB = _lio.Lun(tpg, 1, 2, "vol1-b", rtpi: 4);
        _lio.Acl(tpg, NodeA, 0, lunA, FakeLio.LoggedInInfo(NodeA));
        _lio.Acl(tpg, NodeB, 0, lunB);
        return tpg;
    }

    [Fact]
    public void EachIscsiBackstoreBindsToTheInitiatorWhoseAclMapsIt()
    {
        IscsiTwoPaths();
        var a = _cfs.ResolveNexus(1, "vol1-a");
        var b = _cfs.ResolveNexus(2, "vol1-b");

        Assert.Equal(new ItNexus(new InitiatorPort(ProtocolId.Iscsi, NodeA), new TargetPort(ProtocolId.Iscsi, Target + ",t,0x0001", 3)), a.Nexus);
        Assert.Equal(new ItNexus(new InitiatorPort(ProtocolId.Iscsi, NodeB), new TargetPort(ProtocolId.Iscsi, Target + ",t,0x0001", 4)), b.Nexus);
        Assert.Null(a.UnboundReason);
        Assert.False(a.FromConfigString);
        Assert.Equal(0, a.Lun!.Lun);
        Assert.Equal(1, b.Lun!.Lun);
    }

    [Fact]
    public void IscsiAclNamesAreKeptInLowerCase()
    {
        _lio.Backstore(1, "v");
        var tpg = _lio.Tpg("iscsi", Target);
        _lio.Acl(tpg, "iqn.1991-05.com.Microsoft:WIN-NODE1", 0, _lio.Lun(tpg, 0, 1, "v", rtpi: 1));
        Assert.Equal("iqn.1991-05.com.microsoft:win-node1", _cfs.ResolveNexus(1, "v").Nexus!.Initiator.Name);
    }

    [Fact]
    public void TcmLoopTargetsBindThroughTheirNexus()
    {
        _lio.Backstore(3, "vol2-a");
        _lio.Backstore(4, "vol2-b");
        var t1 = _lio.Tpg("loopback", "naa.5001405000000001");
        var t2 = _lio.Tpg("loopback", "naa.5001405000000002");
        FakeLio.Write(t1, "nexus", "naa.50014051111111aa\n");
        FakeLio.Write(t2, "nexus", "naa.50014052222222bb\n");
        _lio.Lun(t1, 0, 3, "vol2-a", rtpi: 1);
        _lio.Lun(t2, 0, 4, "vol2-b", rtpi: 2);

        Assert.Equal(new ItNexus(new InitiatorPort(ProtocolId.Sas, "naa.50014051111111aa"), new TargetPort(ProtocolId.Sas, "naa.5001405000000001", 1)),
            _cfs.ResolveNexus(3, "vol2-a").Nexus);
        Assert.Equal(new ItNexus(new InitiatorPort(ProtocolId.Sas, "naa.50014052222222bb"), new TargetPort(ProtocolId.Sas, "naa.5001405000000002", 2)),
            _cfs.ResolveNexus(4, "vol2-b").Nexus);
    }

    [Theory]
    [InlineData("fc.21000024ff000001", ProtocolId.FibreChannel)]
    [InlineData("iqn.2020-01.loop:init", ProtocolId.Iscsi)]
    public void TcmLoopProtocolFollowsTheNexusPrefix(string initiator, ProtocolId protocol)
    {
        _lio.Backstore(1, "v");
        var tpg = _lio.Tpg("loopback", "naa.5001405000000009");
        FakeLio.Write(tpg, "nexus", initiator + "\n");
        _lio.Lun(tpg, 0, 1, "v");
        var nexus = _cfs.ResolveNexus(1, "v").Nexus!;
        Assert.Equal(protocol, nexus.Initiator.Protocol);
        Assert.Equal(protocol, nexus.Target.Protocol);
    }

    [Fact]
    public void ATcmLoopTpgWithoutNexusIsUnbound()
    {
        _lio.Backstore(1, "v");
        var tpg = _lio.Tpg("loopback", "naa.5001405000000009");
        FakeLio.Write(tpg, "nexus", ""); // the kernel answers ENODEV; an empty read means the same
        _lio.Lun(tpg, 0, 1, "v");
        var binding = _cfs.ResolveNexus(1, "v");
        Assert.False(binding.IsBound);
        Assert.Contains("has no nexus yet", binding.UnboundReason);
    }

    [Fact]
    public void ABackstoreNoLunLinksIsUnbound()
    {
        IscsiTwoPaths();
        _lio.Backstore(5, "lonely");
        var binding = _cfs.ResolveNexus(5, "lonely");
        Assert.Null(binding.Nexus);
        Assert.Equal("backstore lonely (user_5) is not linked to any LUN yet", binding.UnboundReason);
    }

    [Fact]
    public void ABackstoreMappedByTwoAclsIsRefusedWithBothNames()
    {
        var tpg = IscsiTwoPaths();
        _lio.Backstore(6, "vol3");
        var lun = _lio.Lun(tpg, 2, 6, "vol3", rtpi: 5);
        _lio.Acl(tpg, NodeA, 1, lun);
        _lio.Acl(tpg, NodeB, 1, lun);

        var binding = _cfs.ResolveNexus(6, "vol3");
        Assert.False(binding.IsBound);
        Assert.Equal($"backstore vol3 is mapped by 2 ACLs ({NodeA}, {NodeB}): one backstore must serve exactly one initiator", binding.UnboundReason);
    }

    [Fact]
    public void ABackstoreBehindTwoTargetPortsIsRefused()
    {
        _lio.Backstore(1, "v");
        var t1 = _lio.Tpg("iscsi", Target, 1);
        var t2 = _lio.Tpg("iscsi", Target, 2);
        _lio.Acl(t1, NodeA, 0, _lio.Lun(t1, 0, 1, "v", rtpi: 1));
        _lio.Acl(t2, NodeA, 0, _lio.Lun(t2, 0, 1, "v", rtpi: 2));
        var binding = _cfs.ResolveNexus(1, "v");
        Assert.False(binding.IsBound);
        Assert.Contains("reached through 2 target ports", binding.UnboundReason);
        Assert.Contains(",t,0x0002", binding.UnboundReason);
    }

    [Fact]
    public void ALunNoAclMapsIsUnboundAndDemoModeIsNamed()
    {
        _lio.Backstore(1, "v");
        _lio.Backstore(2, "w");
        var tpg = _lio.Tpg("iscsi", Target, 1);
        _lio.Lun(tpg, 0, 1, "v");
        var demo = _lio.Tpg("iscsi", Target, 3, demoMode: true);
        _lio.Lun(demo, 0, 2, "w");

        Assert.Contains("no ACL maps that LUN yet", _cfs.ResolveNexus(1, "v").UnboundReason);
        Assert.Contains("demo mode (generate_node_acls=1)", _cfs.ResolveNexus(2, "w").UnboundReason);
        // Demo mode is never offered as a way out: any initiator reaches that LUN.
        Assert.DoesNotContain("initiator=", _cfs.ResolveNexus(2, "w").UnboundReason);
    }

    [Fact]
    public void DemoModeUnbindsEvenAnAclOrAnExplicitInitiator()
    {
        _lio.Backstore(1, "v");
        var demo = _lio.Tpg("iscsi", Target, 1, demoMode: true);
        _lio.Acl(demo, NodeA, 0, _lio.Lun(demo, 0, 1, "v", rtpi: 1));

        // Any initiator without an ACL of its own gets a generated one mapping every LUN.
        Assert.Contains("demo mode", _cfs.ResolveNexus(1, "v").UnboundReason);
        var explicitNexus = _cfs.ResolveNexus(1, "v", VolumeConfig.Parse("sharedvol//srv/vol.img;initiator=" + ConfigString.Escape(NodeA)));
        Assert.Null(explicitNexus.Nexus);
        Assert.Contains("demo mode", explicitNexus.UnboundReason);
    }

    [Fact]
    public void AnAclMappingAnotherLunDoesNotCount()
    {
        var tpg = IscsiTwoPaths();
        _lio.Backstore(7, "x");
        _lio.Lun(tpg, 5, 7, "x");
        Assert.Contains("no ACL maps that LUN yet", _cfs.ResolveNexus(7, "x").UnboundReason);
    }

    [Fact]
    public void ExplicitInitiatorOverridesAndWarnsAboutTheAcls()
    {
        var tpg = IscsiTwoPaths();
        _lio.Backstore(6, "vol3");
        var lun = _lio.Lun(tpg, 2, 6, "vol3", rtpi: 5);
        _lio.Acl(tpg, NodeA, 1, lun);
        _lio.Acl(tpg, NodeB, 1, lun);

        var config = VolumeConfig.Parse("sharedvol//srv/vol.img;initiator=" + ConfigString.Escape(NodeA));
        var binding = _cfs.ResolveNexus(6, "vol3", config);
        Assert.True(binding.FromConfigString);
        Assert.Equal(new ItNexus(new InitiatorPort(ProtocolId.Iscsi, NodeA), new TargetPort(ProtocolId.Iscsi, Target + ",t,0x0001", 5)), binding.Nexus);
        Assert.Contains(NodeB, binding.Warning);
        Assert.EndsWith(NodeA, binding.AclPath);
    }

    [Fact]
    public void ExplicitInitiatorAndTargetBindABackstoreNotLinkedYet()
    {
        _lio.Backstore(1, "v");
        var config = VolumeConfig.Parse("sharedvol//srv/vol.img;initiator=iqn.2020-01.x%3Ai;target=iqn.2020-01.x%3At,t,0x0002;rtpi=7");
        var binding = _cfs.ResolveNexus(1, "v", config);
        Assert.Equal(new ItNexus(new InitiatorPort(ProtocolId.Iscsi, "iqn.2020-01.x:i"), new TargetPort(ProtocolId.Iscsi, "iqn.2020-01.x:t,t,0x0002", 7)), binding.Nexus);
        Assert.Null(binding.Lun);
    }

    [Fact]
    public void ExplicitInitiatorWithoutAnyLunOrTargetIsUnbound()
    {
        _lio.Backstore(1, "v");
        var binding = _cfs.ResolveNexus(1, "v", VolumeConfig.Parse("sharedvol//srv/vol.img;initiator=iqn.2020-01.x%3Ai"));
        Assert.False(binding.IsBound);
        Assert.Contains("add target=", binding.UnboundReason);
    }

    [Fact]
    public void ExplicitRtpiAloneOnlyReplacesTheRtpi()
    {
        IscsiTwoPaths();
        var binding = _cfs.ResolveNexus(1, "vol1-a", VolumeConfig.Parse("sharedvol//srv/vol.img;rtpi=0x20"));
        Assert.Equal(NodeA, binding.Nexus!.Initiator.Name);
        Assert.Equal(32, binding.Nexus.Target.RelativeTargetPortId);
    }

    [Fact]
    public void RtpiComesFromTheTpgWhenLunStatisticsAreMissingElseFromTheTpgt()
    {
        _lio.Backstore(1, "v");
        _lio.Backstore(2, "w");
        var t1 = _lio.Tpg("iscsi", Target, 1);
        FakeLio.Write(t1, "rtpi", "0x5\n"); // Linux 6.4+ prints %#x
        _lio.Acl(t1, NodeA, 0, _lio.Lun(t1, 0, 1, "v"));
        var t9 = _lio.Tpg("iscsi", "iqn.2003-01.other:t", 9);
        _lio.Acl(t9, NodeB, 0, _lio.Lun(t9, 0, 2, "w"));

        Assert.Equal(5, _cfs.ResolveNexus(1, "v").Nexus!.Target.RelativeTargetPortId);
        Assert.Equal(9, _cfs.ResolveNexus(2, "w").Nexus!.Target.RelativeTargetPortId);
    }

    [Fact]
    public void FindLunsListsEveryFabricLinkingTheBackstore()
    {
        _lio.Backstore(1, "v");
        var iscsi = _lio.Tpg("iscsi", Target);
        var loop = _lio.Tpg("loopback", "naa.5001405000000001");
        _lio.Lun(iscsi, 4, 1, "v");
        _lio.Lun(loop, 0, 1, "v");
        _lio.Backstore(2, "v"); // same name on another HBA is another backstore
        _lio.Lun(iscsi, 5, 2, "v");

        var luns = _cfs.FindLuns(1, "v");
        Assert.Equal([("iscsi", 4), ("loopback", 0)], luns.Select(l => (l.Fabric, l.Lun)).Order().ToArray());
    }

    [Fact]
    public void SessionStateComesFromTheAclInfo()
    {
        IscsiTwoPaths();
        Assert.True(_cfs.IsSessionActive(NodeA));
        Assert.True(_cfs.IsSessionActive(NodeA.ToUpperInvariant()));
        Assert.False(_cfs.IsSessionActive(NodeB));
        Assert.False(_cfs.IsSessionActive("iqn.2000-01.unknown:x"));

        var a = _cfs.ResolveNexus(1, "vol1-a");
        Assert.True(_cfs.IsNexusActive(a));
        Assert.False(_cfs.IsNexusActive(_cfs.ResolveNexus(2, "vol1-b")));

        var info = TargetConfigfs.ReadIscsiSession(a.AclPath!);
        Assert.Equal("80123456dd65", info.Isid);
        Assert.Equal("TARG_SESS_STATE_LOGGED_IN", info.State);
    }

    [Fact]
    public void AFailedSessionIsNotActive()
    {
        var text = FakeLio.LoggedInInfo(NodeA).Replace("TARG_SESS_STATE_LOGGED_IN", "TARG_SESS_STATE_FAILED");
        Assert.False(IscsiSessionInfo.Parse(text).Active);
        Assert.True(IscsiSessionInfo.Parse(FakeLio.LoggedInInfo(NodeA)).Active);
    }

    [Fact]
    public void TcmLoopNexusLossIsSeen()
    {
        _lio.Backstore(1, "v");
        var tpg = _lio.Tpg("loopback", "naa.5001405000000001");
        FakeLio.Write(tpg, "nexus", "naa.50014051111111aa\n");
        _lio.Lun(tpg, 0, 1, "v");
        var binding = _cfs.ResolveNexus(1, "v");
        Assert.True(_cfs.IsNexusActive(binding));
        FakeLio.Write(tpg, "nexus", "");
        Assert.False(_cfs.IsNexusActive(binding));
    }
}
