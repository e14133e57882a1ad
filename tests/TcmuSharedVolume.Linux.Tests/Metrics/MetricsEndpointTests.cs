using System.Net;
using System.Net.Sockets;
using TcmuSharedVolume.Linux.Configuration;
using TcmuSharedVolume.Linux.Metrics;

namespace TcmuSharedVolume.Tests.Metrics;

public sealed class MetricsEndpointTests
{
    [Theory]
    [InlineData("127.0.0.1:9753", "127.0.0.1", 9753)]
    [InlineData("127.0.0.2:80", "127.0.0.2", 80)]
    [InlineData("localhost:9753", "127.0.0.1", 9753)]
    [InlineData("[::1]:9753", "::1", 9753)]
    public void LoopbackAddressesAreAccepted(string text, string address, int port)
    {
        Assert.True(MetricsEndpoint.TryParse(text, out var e, out _));
        var ip = Assert.IsType<IPEndPoint>(e!.Address);
        Assert.Equal((IPAddress.Parse(address), port), (ip.Address, ip.Port));
        Assert.False(e.IsUnixSocket);
    }

    [Fact]
    public void AnAbsolutePathIsAUnixSocket()
    {
        Assert.True(MetricsEndpoint.TryParse("/run/tcmu-shared-volume/metrics.sock", out var e, out _));
        Assert.True(e!.IsUnixSocket);
        Assert.IsType<UnixDomainSocketEndPoint>(e.Address);
    }

    [Theory]
    [InlineData("0.0.0.0:9753", "not a loopback")]
    [InlineData("192.168.1.10:9753", "not a loopback")]
    [InlineData("[::]:9753", "not a loopback")]
    [InlineData("example.org:9753", "not a loopback")]
    [InlineData("127.0.0.1", "expected")]
    [InlineData("127.0.0.1:0", "expected")]
    [InlineData("127.0.0.1:70000", "expected")]
    [InlineData("metrics.sock", "expected")]
    [InlineData("/run/", "unix socket path")]
    public void AnythingElseIsRefusedWithAReason(string text, string reason)
    {
        Assert.False(MetricsEndpoint.TryParse(text, out var e, out var error));
        Assert.Null(e);
        Assert.Contains(reason, error);
    }

    [Fact]
    public void MetricsAreOffByDefault()
    {
        Assert.Null(DaemonOptions.Default.MetricsListen);
        Assert.Null(DaemonOptions.Parse("log_level = info\n").MetricsListen);
        Assert.Null(DaemonOptions.Parse("metrics_listen = off\n").MetricsListen);
        Assert.Null(DaemonOptions.Parse("metrics_listen =\n").MetricsListen);
    }

    [Fact]
    public void TheConfigFileTurnsThemOn()
    {
        var o = DaemonOptions.Parse("metrics_listen = 127.0.0.1:9753  # Prometheus\n");
        Assert.Equal("127.0.0.1:9753", o.MetricsListen!.Text);
    }

    [Fact]
    public void AnExposedAddressInTheConfigFileIsAnErrorWithItsLine()
    {
        var e = Assert.Throws<ConfigurationException>(() => DaemonOptions.Parse("\nmetrics_listen = 0.0.0.0:9753\n", "t.conf"));
        Assert.StartsWith("t.conf:2: metrics_listen:", e.Message);
        Assert.Contains("not a loopback", e.Message);
    }
}
