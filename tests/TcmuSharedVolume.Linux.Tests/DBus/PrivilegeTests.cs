using TcmuSharedVolume.Linux.DBus;

namespace TcmuSharedVolume.Tests.DBus;

/// <summary>
/// Callers other than root: the bus here lets anyone send anything, so what is refused is
/// refused by the daemon itself (sd-bus's CAP_SYS_ADMIN check on the methods not marked
/// UNPRIVILEGED). Needs root to switch to nobody; skipped otherwise.
/// </summary>
public sealed class PrivilegeTests : IDisposable
{
    private readonly PrivateBus _bus = new();
    private int _cleared;

    public void Dispose() => _bus.Dispose();

    [Fact]
    public void AnUnprivilegedCallerMayCheckConfigButNotClearReservations()
    {
        if (Environment.UserName != "root") return; // cannot become another user
        using var service = new ServiceThread(new TcmuServiceHandlers
        {
            CheckConfig = _ => (true, ""),
            ClearReservations = _ => { _cleared++; return (true, "cleared"); },
        }, _bus.Address);

        var check = _bus.BusctlAsNobody("call", TcmuService.BusName, TcmuService.HandlerPath, TcmuService.HandlerInterface,
            "CheckConfig", "s", "sharedvol//a");
        var status = _bus.BusctlAsNobody("call", TcmuService.BusName, TcmuService.HandlerPath, TcmuService.AdminInterface, "GetStatusJson");
        var clear = _bus.BusctlAsNobody("call", TcmuService.BusName, TcmuService.HandlerPath, TcmuService.AdminInterface,
            "ClearReservations", "sb", "/srv/vol1.img", "true");

        Assert.True(check.Exit == 0, check.Err);
        Assert.True(status.Exit == 0, status.Err);
        Assert.NotEqual(0, clear.Exit);
        Assert.Contains("Access denied", clear.Err, StringComparison.OrdinalIgnoreCase);
        Assert.Equal(0, _cleared);
    }
}

/// <summary>The shipped bus policy, on a bus with the system bus's default policy.</summary>
public sealed class ShippedPolicyTests : IDisposable
{
    private readonly PrivateBus _bus = new(PolicyFileTests.RepoFile("systemd/org.kernel.TCMUService1.conf"));

    public void Dispose() => _bus.Dispose();

    [Fact]
    public void AnyoneMayReadAndCheckOnlyRootMayClearAndOwn()
    {
        if (Environment.UserName != "root") return; // cannot become another user
        int cleared = 0;
        using var service = new ServiceThread(new TcmuServiceHandlers
        {
            CheckConfig = _ => (true, ""),
            ClearReservations = _ => { cleared++; return (true, "cleared"); },
        }, _bus.Address);

        var managed = _bus.BusctlAsNobody("call", TcmuService.BusName, TcmuService.ManagerPath,
            "org.freedesktop.DBus.ObjectManager", "GetManagedObjects");
        var check = _bus.BusctlAsNobody("call", TcmuService.BusName, TcmuService.HandlerPath, TcmuService.HandlerInterface,
            "CheckConfig", "s", "sharedvol//a");
        var desc = _bus.BusctlAsNobody("get-property", TcmuService.BusName, TcmuService.HandlerPath, TcmuService.HandlerInterface, "ConfigDesc");
        var status = _bus.BusctlAsNobody("call", TcmuService.BusName, TcmuService.HandlerPath, TcmuService.AdminInterface, "GetStatusJson");
        var clear = _bus.BusctlAsNobody("call", TcmuService.BusName, TcmuService.HandlerPath, TcmuService.AdminInterface,
            "ClearReservations", "sb", "/srv/vol1.img", "true");
        var rootClear = _bus.Busctl("call", TcmuService.BusName, TcmuService.HandlerPath, TcmuService.AdminInterface,
            "ClearReservations", "sb", "/srv/vol1.img", "true");

        Assert.True(managed.Exit == 0, managed.Err);
        Assert.True(check.Exit == 0, check.Err);
        Assert.True(desc.Exit == 0, desc.Err);
        Assert.True(status.Exit == 0, status.Err);
        Assert.NotEqual(0, clear.Exit);
        // Refused by the bus policy itself, before the daemon's own check.
        var deadline = DateTime.UtcNow.AddSeconds(5);
        while (!_bus.DaemonLog.Contains("member=\"ClearReservations\"") && DateTime.UtcNow < deadline) Thread.Sleep(20);
        Assert.Contains("Rejected send message", _bus.DaemonLog);
        Assert.Contains("member=\"ClearReservations\"", _bus.DaemonLog);
        Assert.DoesNotContain("member=\"CheckConfig\"", _bus.DaemonLog);
        Assert.True(rootClear.Exit == 0, rootClear.Err);
        Assert.Equal(1, cleared);
    }
}
