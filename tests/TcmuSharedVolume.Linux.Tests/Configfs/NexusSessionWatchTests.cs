using TcmuSharedVolume.Linux.Configfs;

namespace TcmuSharedVolume.Tests.Configfs;

/// <summary>SPC-2 5.5.1: a logout ends the nexus and its RESERVE(6); TCMU never says so, configfs does.</summary>
public sealed class NexusSessionWatchTests : IDisposable
{
    private const string Target = "iqn.2003-01.org.linux-iscsi.tsv:watch";
    private const string Node = "iqn.2007-10.com.github:sahlberg:libiscsi:iscsi-test";

    private readonly FakeLio _lio = new();
    private readonly TargetConfigfs _cfs;
    private readonly string _acl;

    public NexusSessionWatchTests()
    {
        _cfs = new TargetConfigfs(_lio.Root, _lio.ModuleParameters);
        _lio.Backstore(1, "v-1");
        var tpg = _lio.Tpg("iscsi", Target);
        var lun = _lio.Lun(tpg, 0, 1, "v-1");
        _acl = _lio.Acl(tpg, Node, 0, lun, FakeLio.LoggedInInfo(Node));
    }

    public void Dispose() => _lio.Dispose();

    private void Session(string? id) => FakeLio.Write(_acl, "info", id is null
        ? $"No active iSCSI Session for Initiator Endpoint: {Node}\n"
        : FakeLio.LoggedInInfo(Node).Replace("LIO Session ID: 2 ", $"LIO Session ID: {id} "));

    [Fact]
    public void ALogoutEndsTheNexusOnce()
    {
        var binding = _cfs.ResolveNexus(1, "v-1");
        var watch = new NexusSessionWatch(_cfs);
        Assert.False(watch.NexusEnded(binding));
        Assert.False(watch.NexusEnded(binding));
        Session(null);
        Assert.True(watch.NexusEnded(binding));
        Assert.False(watch.NexusEnded(binding));
        Session("3");
        Assert.False(watch.NexusEnded(binding)); // a login is not a loss
    }

    [Fact]
    public void ALogoutAndLoginBetweenTwoLooksEndsTheNexus()
    {
        var binding = _cfs.ResolveNexus(1, "v-1");
        var watch = new NexusSessionWatch(_cfs);
        Assert.False(watch.NexusEnded(binding));
        Session("7"); // libiscsi Reserve6.Logout: out and in again within milliseconds
        Assert.True(watch.NexusEnded(binding));
        Assert.False(watch.NexusEnded(binding));
    }

    [Fact]
    public void TheSessionNumberIsParsed()
    {
        Assert.Equal("2", IscsiSessionInfo.Parse(FakeLio.LoggedInInfo(Node)).SessionId);
        Assert.Null(IscsiSessionInfo.Parse($"No active iSCSI Session for Initiator Endpoint: {Node}\n").SessionId);
    }
}
