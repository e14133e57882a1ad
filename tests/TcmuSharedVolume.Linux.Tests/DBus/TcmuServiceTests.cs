using System.Collections.Concurrent;
using System.Text.Json;
using TcmuSharedVolume.Linux.DBus;

namespace TcmuSharedVolume.Tests.DBus;

/// <summary>The D-Bus contract targetcli relies on, checked from outside with busctl (docs/tcmu.md §14).</summary>
public sealed class TcmuServiceTests : IDisposable
{
    private readonly PrivateBus _bus = new();
    private readonly ConcurrentQueue<string> _checked = new();
    private readonly ConcurrentQueue<string> _cleared = new();

    private TcmuServiceHandlers Handlers(Func<string, (bool, string)>? check = null) => new()
    {
        CheckConfig = c =>
        {
            _checked.Enqueue(c);
            return check?.Invoke(c) ?? (c.Contains("/missing") ? (false, $"no such file: {c[10..]}") : (true, ""));
        },
        GetStatus = () => SampleStatus,
        ClearReservations = v =>
        {
            _cleared.Enqueue(v);
            return v == "/srv/vol1.img" ? (true, "cleared 2 registrations") : (false, $"no volume '{v}'");
        },
    };

    internal static readonly AdminStatus SampleStatus = new("0.1.0",
    [
        new VolumeStatus("/srv/vol1.img", "5f2a", 10L << 30, 512,
            [
                new PathStatus("vol1-1", "iqn.2024-01.org.example:node1", "iqn.2024-01.org.example:tgt,t,0x1", null),
                new PathStatus("vol1-2", null, null, "no ACL maps this backstore"),
            ],
            new ReservationStatus(7, false,
                [new RegistrationStatus("iqn.2024-01.org.example:node1", null, "00000000000000aa")],
                new PersistentReservationStatus("Write Exclusive - Registrants Only", null, "00000000000000aa"),
                null)),
    ]);

    public void Dispose() => _bus.Dispose();

    private static JsonElement Json(string text) => JsonDocument.Parse(text).RootElement;

    [Fact]
    public void GetManagedObjectsListsExactlyTheSharedvolHandlerWithItsConfigDesc()
    {
        using var service = new ServiceThread(Handlers(), _bus.Address);

        var (exit, stdout, stderr) = _bus.Busctl("--json=short", "call", TcmuService.BusName, TcmuService.ManagerPath,
            "org.freedesktop.DBus.ObjectManager", "GetManagedObjects");

        Assert.True(exit == 0, stderr);
        var objects = Json(stdout).GetProperty("data")[0];
        // targetcli makes one user:<name> backstore per object path: there must be exactly one.
        var paths = objects.EnumerateObject().Select(p => p.Name).ToArray();
        Assert.Equal(["/org/kernel/TCMUService1/sharedvol"], paths);
        var handler = objects.GetProperty(TcmuService.HandlerPath).GetProperty("org.kernel.TCMUService1");
        var desc = handler.GetProperty("ConfigDesc");
        Assert.Equal("s", desc.GetProperty("type").GetString());
        Assert.Equal(TcmuService.ConfigDesc, desc.GetProperty("data").GetString());
        Assert.StartsWith("sharedvol/<absolute path>", desc.GetProperty("data").GetString());
    }

    [Fact]
    public void ConfigDescIsReadableAsAProperty()
    {
        using var service = new ServiceThread(Handlers(), _bus.Address);

        var (exit, stdout, stderr) = _bus.Busctl("--json=short", "get-property", TcmuService.BusName, TcmuService.HandlerPath,
            TcmuService.HandlerInterface, "ConfigDesc");

        Assert.True(exit == 0, stderr);
        Assert.Equal(TcmuService.ConfigDesc, Json(stdout).GetProperty("data").GetString());
    }

    [Fact]
    public void CheckConfigReturnsTheValidatorsVerdictAndReason()
    {
        using var service = new ServiceThread(Handlers(), _bus.Address);

        var bad = _bus.Busctl("--json=short", "call", TcmuService.BusName, TcmuService.HandlerPath,
            TcmuService.HandlerInterface, "CheckConfig", "s", "sharedvol//srv/missing.img");
        var good = _bus.Busctl("--json=short", "call", TcmuService.BusName, TcmuService.HandlerPath,
            TcmuService.HandlerInterface, "CheckConfig", "s", "sharedvol//srv/vol1.img;initiator=iqn.2024-01.org.example%3Anode1");

        Assert.True(bad.Exit == 0, bad.Err);
        var reply = Json(bad.Out);
        Assert.Equal("bs", reply.GetProperty("type").GetString());
        Assert.False(reply.GetProperty("data")[0].GetBoolean());
        Assert.Equal("no such file: /srv/missing.img", reply.GetProperty("data")[1].GetString());

        var ok = Json(good.Out).GetProperty("data");
        Assert.True(ok[0].GetBoolean());
        Assert.Equal("success", ok[1].GetString());
        // The validator gets the full string, subtype prefix included, as targetcli sends it.
        Assert.Equal(["sharedvol//srv/missing.img", "sharedvol//srv/vol1.img;initiator=iqn.2024-01.org.example%3Anode1"], _checked.ToArray());
    }

    [Fact]
    public void CheckConfigRefusesAnotherSubtypeWithoutAskingTheValidator()
    {
        using var service = new ServiceThread(Handlers(), _bus.Address);

        var r = _bus.Busctl("--json=short", "call", TcmuService.BusName, TcmuService.HandlerPath,
            TcmuService.HandlerInterface, "CheckConfig", "s", "file//srv/vol1.img");

        var data = Json(r.Out).GetProperty("data");
        Assert.False(data[0].GetBoolean());
        Assert.Contains("must start with 'sharedvol/'", data[1].GetString());
        Assert.Empty(_checked);
    }

    [Fact]
    public void CheckConfigWithoutReasonSaysUnknown()
    {
        using var service = new ServiceThread(Handlers(_ => (false, "")), _bus.Address);

        var r = _bus.Busctl("--json=short", "call", TcmuService.BusName, TcmuService.HandlerPath,
            TcmuService.HandlerInterface, "CheckConfig", "s", "sharedvol//x");

        Assert.Equal("unknown", Json(r.Out).GetProperty("data")[1].GetString());
    }

    [Fact]
    public void AValidatorThatThrowsBecomesADBusErrorAndTheServiceKeepsServing()
    {
        using var service = new ServiceThread(Handlers(c => c.EndsWith("boom") ? throw new IOException("disk on fire") : (true, "")), _bus.Address);

        var failed = _bus.Busctl("call", TcmuService.BusName, TcmuService.HandlerPath,
            TcmuService.HandlerInterface, "CheckConfig", "s", "sharedvol//boom");
        var after = _bus.Busctl("--json=short", "call", TcmuService.BusName, TcmuService.HandlerPath,
            TcmuService.HandlerInterface, "CheckConfig", "s", "sharedvol//fine");

        Assert.NotEqual(0, failed.Exit);
        Assert.Contains("disk on fire", failed.Err);
        Assert.True(Json(after.Out).GetProperty("data")[0].GetBoolean());
    }

    [Fact]
    public void ChangeMediumAnswersNotSupportedInsteadOfUnknownMethod()
    {
        using var service = new ServiceThread(Handlers(), _bus.Address);

        var r = _bus.Busctl("--json=short", "call", TcmuService.BusName, TcmuService.HandlerPath,
            TcmuService.HandlerInterface, "ChangeMedium", "sts", "vol1-1", "1073741824", "sharedvol//srv/vol1.img");

        Assert.True(r.Exit == 0, r.Err);
        var reply = Json(r.Out);
        Assert.Equal("is", reply.GetProperty("type").GetString());
        Assert.Equal(-95, reply.GetProperty("data")[0].GetInt32());
        Assert.StartsWith("ChangeMedium is not supported by sharedvol", reply.GetProperty("data")[1].GetString());
    }

    [Fact]
    public void IntrospectionShowsTheMethodsWithTheirParameterNames()
    {
        using var service = new ServiceThread(Handlers(), _bus.Address);

        var r = _bus.Busctl("--xml-interface", "introspect", TcmuService.BusName, TcmuService.HandlerPath);

        Assert.True(r.Exit == 0, r.Err);
        Assert.Contains("<method name=\"CheckConfig\">", r.Out);
        Assert.Contains("<arg type=\"s\" name=\"configstr\" direction=\"in\"/>", r.Out);
        Assert.Contains("<arg type=\"b\" name=\"is_valid\" direction=\"out\"/>", r.Out);
        Assert.Contains("<method name=\"ChangeMedium\">", r.Out);
        Assert.Contains("<interface name=\"io.github.tcmusharedvolume.Admin1\">", r.Out);
    }

    [Fact]
    public void ASecondOwnerIsRefusedWithAClearMessage()
    {
        using var first = new ServiceThread(Handlers(), _bus.Address);

        var e = Assert.Throws<DBusException>(() => TcmuService.Start(Handlers(), _bus.Address));

        Assert.Contains("already owned", e.Message);
        Assert.Contains("tcmu-runner", e.Message);
    }

    [Fact]
    public void TheRunLoopTicksSoTheDaemonCanPingTheWatchdog()
    {
        using var service = new ServiceThread(Handlers(), _bus.Address);
        var deadline = DateTime.UtcNow.AddSeconds(5);
        while (service.Ticks < 3 && DateTime.UtcNow < deadline) Thread.Sleep(20);
        Assert.True(service.Ticks >= 3);
    }

    [Fact]
    public void AnIdleServiceSleepsUntilACallArrivesAndStopsAtOnce()
    {
        // No tick, as the daemon runs it: nothing but a message or the stop may wake it.
        using var service = new ServiceThread(Handlers(), _bus.Address, ticking: false);
        Thread.Sleep(300); // the name request's replies settle
        int settled = service.Ticks;
        Thread.Sleep(1000);
        Assert.Equal(settled, service.Ticks);

        var (exit, _, stderr) = _bus.Busctl("get-property", TcmuService.BusName, TcmuService.HandlerPath,
            TcmuService.HandlerInterface, "ConfigDesc");
        Assert.True(exit == 0, stderr);
        Assert.True(service.Ticks > settled);

        var stopping = System.Diagnostics.Stopwatch.StartNew();
        Assert.True(service.Stop(TimeSpan.FromSeconds(5)));
        Assert.True(stopping.ElapsedMilliseconds < 200, $"stopped after {stopping.ElapsedMilliseconds} ms");
    }

    [Fact]
    public void AdminClientReadsTheStatusTheDaemonReports()
    {
        using var service = new ServiceThread(Handlers(), _bus.Address);
        using var client = AdminClient.Connect(_bus.Address);

        var status = AdminJsonContext.Deserialize(client.GetStatusJson());

        var volume = Assert.Single(status.Volumes);
        Assert.Equal("/srv/vol1.img", volume.BackingPath);
        Assert.Equal(2, volume.Paths.Count);
        Assert.Null(volume.Paths[1].Initiator);
        Assert.Equal("00000000000000aa", volume.Reservations.Reservation!.Key);
        Assert.Equal(7u, volume.Reservations.Generation);
    }

    [Fact]
    public void ClearReservationsNeedsConfirmationAndThenCallsTheDaemon()
    {
        using var service = new ServiceThread(Handlers(), _bus.Address);
        using var client = AdminClient.Connect(_bus.Address);

        var refused = client.ClearReservations("/srv/vol1.img", confirm: false);
        Assert.False(refused.Ok);
        Assert.Contains("confirm", refused.Message);
        Assert.Empty(_cleared);

        var done = client.ClearReservations("/srv/vol1.img", confirm: true);
        var unknown = client.ClearReservations("/srv/other.img", confirm: true);
        Assert.Equal((true, "cleared 2 registrations"), done);
        Assert.Equal((false, "no volume '/srv/other.img'"), unknown);
        Assert.Equal(["/srv/vol1.img", "/srv/other.img"], _cleared.ToArray());
    }

    [Fact]
    public void AdminClientReportsANameNobodyOwns()
    {
        using var client = AdminClient.Connect(_bus.Address);

        var e = Assert.Throws<DBusException>(() => client.GetStatusJson());

        Assert.Equal("org.freedesktop.DBus.Error.ServiceUnknown", e.ErrorName);
    }

    [Fact]
    public void AdminClientCallsCheckConfigAndChangeMediumToo()
    {
        using var service = new ServiceThread(Handlers(), _bus.Address);
        using var client = AdminClient.Connect(_bus.Address);

        Assert.Equal((true, "success"), client.CheckConfig("sharedvol//srv/a.img"));
        var (ret, message) = client.ChangeMedium("vol1-1", 4096, "sharedvol//srv/a.img");
        Assert.Equal(-95, ret);
        Assert.Contains("not supported", message);
    }
}

public sealed class PolicyFileTests
{
    internal static string RepoFile(string relative)
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "TcmuSharedVolume.sln"))) dir = dir.Parent;
        return Path.Combine(dir?.FullName ?? throw new DirectoryNotFoundException("repository root"), relative);
    }

    [Fact]
    public void TheShippedPolicyIsAcceptedByDbusDaemonAndLetsRootServe()
    {
        // dbus-daemon refuses to start on a malformed included policy file; root may own the name.
        using var bus = new PrivateBus(RepoFile("systemd/org.kernel.TCMUService1.conf"));
        using var service = new ServiceThread(new TcmuServiceHandlers { CheckConfig = _ => (true, "") }, bus.Address);

        var r = bus.Busctl("--json=short", "call", TcmuService.BusName, TcmuService.HandlerPath,
            TcmuService.HandlerInterface, "CheckConfig", "s", "sharedvol//a");
        Assert.True(r.Exit == 0, r.Err);
    }

    [Fact]
    public void TheActivationFileNamesTheUnitAndTheBinary()
    {
        var lines = File.ReadAllLines(RepoFile("systemd/org.kernel.TCMUService1.service"));
        Assert.Contains("[D-BUS Service]", lines);
        Assert.Contains("Name=org.kernel.TCMUService1", lines);
        Assert.Contains("Exec=/usr/sbin/tcmu-shared-volume", lines);
        Assert.Contains("User=root", lines);
        Assert.Contains("SystemdService=tcmu-shared-volume.service", lines);
    }

    [Fact]
    public void TheUnitPassesSystemdAnalyzeVerify()
    {
        var dir = Directory.CreateTempSubdirectory("tsv-unit-");
        try
        {
            // verify insists the binary exists; everything else is checked as shipped.
            var unit = File.ReadAllText(RepoFile("systemd/tcmu-shared-volume.service"))
                .Replace("ExecStart=/usr/sbin/tcmu-shared-volume", "ExecStart=/bin/true");
            var path = Path.Combine(dir.FullName, "tcmu-shared-volume.service");
            File.WriteAllText(path, unit);

            var (exit, stdout, stderr) = PrivateBus.Run("systemd-analyze", "verify", "--man=no", path);

            Assert.Equal(0, exit);
            // Unknown keys and bad values are only warnings: any output at all is a defect.
            Assert.Equal("", (stdout + stderr).Trim());
            Assert.Contains("Type=notify", unit);
            Assert.DoesNotContain("\nBusName=", unit);
            Assert.Contains("Before=target.service rtslib-fb-targetctl.service", unit);
            Assert.Contains("Conflicts=tcmu-runner.service", unit);
            Assert.Contains("WatchdogSec=30", unit);
        }
        finally
        {
            dir.Delete(true);
        }
    }
}
