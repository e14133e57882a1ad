using TcmuSharedVolume.Linux.DBus;

namespace TcmuSharedVolume.Tests.DBus;

/// <summary>
/// Runs only as root, which may switch busctl to user nobody without capabilities; skipped
/// (visibly) otherwise: as any other user, busctl would run with the service's own uid, which
/// sd-bus counts as privileged.
/// </summary>
public sealed class AsNobodyFactAttribute : FactAttribute
{
    public AsNobodyFactAttribute()
    {
        if (Environment.UserName != "root" || !File.Exists("/usr/bin/setpriv"))
            Skip = "needs root and setpriv to call as user nobody";
    }
}

/// <summary>Handlers that record which CheckConfig ran, with a full check that would leak.</summary>
internal sealed class RecordingHandlers
{
    public int FullChecks, SyntaxChecks, Cleared, StatusReads;

    public TcmuServiceHandlers Build(bool withSyntax = true) => new()
    {
        // What the daemon's full check says about a path the caller may not see.
        CheckConfig = _ => { FullChecks++; return (false, "/root/private/vol.img does not exist"); },
        CheckSyntax = withSyntax ? c => { SyntaxChecks++; return c.Contains(";bogus=") ? (false, "unknown option 'bogus'") : (true, ""); } : null,
        GetStatus = () => { StatusReads++; return new AdminStatus("0.1.0", []); },
        ClearReservations = _ => { Cleared++; return (true, "cleared"); },
    };
}

/// <summary>
/// Callers other than root: the bus here lets anyone send anything, so what is refused is
/// refused by the daemon itself (sd-bus's CAP_SYS_ADMIN check on the methods not marked
/// UNPRIVILEGED, and CheckConfig's own check of the sender).
/// </summary>
public sealed class PrivilegeTests : IDisposable
{
    private readonly PrivateBus _bus = new();
    private readonly RecordingHandlers _h = new();

    public void Dispose() => _bus.Dispose();

    private (int Exit, string Out, string Err) CheckConfigAsNobody(string config) =>
        _bus.BusctlAsNobody("call", TcmuService.BusName, TcmuService.HandlerPath, TcmuService.HandlerInterface, "CheckConfig", "s", config);

    [AsNobodyFact]
    public void AnUnprivilegedCallerGetsASyntaxOnlyCheckThatNeverLooksAtThePath()
    {
        using var service = new ServiceThread(_h.Build(), _bus.Address);

        var good = CheckConfigAsNobody("sharedvol//root/private/vol.img");
        var bad = CheckConfigAsNobody("sharedvol//root/private/vol.img;bogus=1");

        Assert.True(good.Exit == 0, good.Err);
        Assert.StartsWith("bs true", good.Out.Trim());
        Assert.Contains("syntax only", good.Out);
        Assert.DoesNotContain("does not exist", good.Out);
        Assert.True(bad.Exit == 0, bad.Err);
        Assert.True(bad.Out.StartsWith("bs false") && bad.Out.Contains("bogus"), bad.Out);
        Assert.Equal(0, _h.FullChecks);
        Assert.Equal(2, _h.SyntaxChecks);
    }

    [AsNobodyFact]
    public void WithoutASyntaxHandlerAnUnprivilegedCallerGetsOnlyThePrefixCheck()
    {
        using var service = new ServiceThread(_h.Build(withSyntax: false), _bus.Address);

        var ours = CheckConfigAsNobody("sharedvol//root/private/vol.img");
        var other = CheckConfigAsNobody("file//root/private/vol.img");

        Assert.StartsWith("bs true", ours.Out.Trim());
        Assert.StartsWith("bs false", other.Out.Trim());
        Assert.Equal(0, _h.FullChecks);
    }

    [Fact]
    public void APrivilegedCallerGetsTheFullCheck()
    {
        // The test runs as root, or as the service's own uid: privileged either way.
        using var service = new ServiceThread(_h.Build(), _bus.Address);

        var r = _bus.Busctl("call", TcmuService.BusName, TcmuService.HandlerPath, TcmuService.HandlerInterface,
            "CheckConfig", "s", "sharedvol//root/private/vol.img");

        Assert.True(r.Exit == 0, r.Err);
        Assert.Contains("does not exist", r.Out);
        Assert.Equal(1, _h.FullChecks);
        Assert.Equal(0, _h.SyntaxChecks);
    }

    [AsNobodyFact]
    public void AnUnprivilegedCallerMayNeitherReadTheStatusNorClearReservations()
    {
        using var service = new ServiceThread(_h.Build(), _bus.Address);

        var status = _bus.BusctlAsNobody("call", TcmuService.BusName, TcmuService.HandlerPath, TcmuService.AdminInterface, "GetStatusJson");
        var clear = _bus.BusctlAsNobody("call", TcmuService.BusName, TcmuService.HandlerPath, TcmuService.AdminInterface,
            "ClearReservations", "sb", "/srv/vol1.img", "true");
        var rootStatus = _bus.Busctl("call", TcmuService.BusName, TcmuService.HandlerPath, TcmuService.AdminInterface, "GetStatusJson");

        Assert.NotEqual(0, status.Exit);
        Assert.Contains("Access denied", status.Err, StringComparison.OrdinalIgnoreCase);
        Assert.NotEqual(0, clear.Exit);
        Assert.Contains("Access denied", clear.Err, StringComparison.OrdinalIgnoreCase);
        Assert.Equal(0, _h.Cleared);
        Assert.True(rootStatus.Exit == 0, rootStatus.Err);
        Assert.Equal(1, _h.StatusReads); // root's read only
    }
}

/// <summary>The shipped bus policy, on a bus with the system bus's default policy.</summary>
public sealed class ShippedPolicyTests : IDisposable
{
    private readonly PrivateBus _bus = new(PolicyFileTests.RepoFile("systemd/org.kernel.TCMUService1.conf"));

    public void Dispose() => _bus.Dispose();

    [AsNobodyFact]
    public void AnyoneMayListAndCheckOnlyRootMayReadStatusClearAndOwn()
    {
        var h = new RecordingHandlers();
        using var service = new ServiceThread(h.Build(), _bus.Address);

        var managed = _bus.BusctlAsNobody("call", TcmuService.BusName, TcmuService.ManagerPath,
            "org.freedesktop.DBus.ObjectManager", "GetManagedObjects");
        var check = _bus.BusctlAsNobody("call", TcmuService.BusName, TcmuService.HandlerPath, TcmuService.HandlerInterface,
            "CheckConfig", "s", "sharedvol//a");
        var desc = _bus.BusctlAsNobody("get-property", TcmuService.BusName, TcmuService.HandlerPath, TcmuService.HandlerInterface, "ConfigDesc");
        var status = _bus.BusctlAsNobody("call", TcmuService.BusName, TcmuService.HandlerPath, TcmuService.AdminInterface, "GetStatusJson");
        var clear = _bus.BusctlAsNobody("call", TcmuService.BusName, TcmuService.HandlerPath, TcmuService.AdminInterface,
            "ClearReservations", "sb", "/srv/vol1.img", "true");
        var rootStatus = _bus.Busctl("call", TcmuService.BusName, TcmuService.HandlerPath, TcmuService.AdminInterface, "GetStatusJson");
        var rootClear = _bus.Busctl("call", TcmuService.BusName, TcmuService.HandlerPath, TcmuService.AdminInterface,
            "ClearReservations", "sb", "/srv/vol1.img", "true");

        Assert.True(managed.Exit == 0, managed.Err);
        Assert.True(check.Exit == 0, check.Err);
        Assert.True(desc.Exit == 0, desc.Err);
        Assert.NotEqual(0, status.Exit);
        Assert.NotEqual(0, clear.Exit);
        // Refused by the bus policy itself, before the daemon's own check.
        var deadline = DateTime.UtcNow.AddSeconds(5);
        while (!(_bus.DaemonLog.Contains("member=\"ClearReservations\"") && _bus.DaemonLog.Contains("member=\"GetStatusJson\"")) &&
               DateTime.UtcNow < deadline) Thread.Sleep(20);
        Assert.Contains("Rejected send message", _bus.DaemonLog);
        Assert.Contains("member=\"ClearReservations\"", _bus.DaemonLog);
        Assert.Contains("member=\"GetStatusJson\"", _bus.DaemonLog);
        Assert.DoesNotContain("member=\"CheckConfig\"", _bus.DaemonLog);
        Assert.True(rootStatus.Exit == 0, rootStatus.Err);
        Assert.True(rootClear.Exit == 0, rootClear.Err);
        Assert.Equal(1, h.StatusReads);
        Assert.Equal(1, h.Cleared);
    }
}
