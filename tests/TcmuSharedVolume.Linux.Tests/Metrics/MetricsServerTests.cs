using System.Net;
using System.Net.Sockets;
using System.Text;
using TcmuSharedVolume.Interop;
using TcmuSharedVolume.Linux.Metrics;

namespace TcmuSharedVolume.Tests.Metrics;

public sealed class MetricsServerTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("tsv-metrics-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static string Get(EndPoint endpoint, string request)
    {
        using var s = endpoint is UnixDomainSocketEndPoint
            ? new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified)
            : new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        s.ReceiveTimeout = 10_000;
        s.Connect(endpoint);
        s.Send(Encoding.ASCII.GetBytes(request));
        var all = new MemoryStream();
        var buffer = new byte[4096];
        int n;
        while ((n = s.Receive(buffer)) > 0) all.Write(buffer, 0, n);
        return Encoding.UTF8.GetString(all.ToArray());
    }

    [Fact]
    public void AnswersGetMetricsOverLoopbackTcp()
    {
        Assert.True(MetricsEndpoint.TryParse("127.0.0.1:1", out var e, out _));
        int calls = 0;
        using var server = MetricsServer.Start(e! with { Address = new IPEndPoint(IPAddress.Loopback, 0) },
            () => $"tsv_up {++calls}\n");

        string reply = Get(server.LocalEndPoint, "GET /metrics HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n\r\n");
        string again = Get(server.LocalEndPoint, "GET /metrics?x=1 HTTP/1.0\r\n\r\n");

        Assert.StartsWith("HTTP/1.1 200 OK\r\n", reply);
        Assert.Contains("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n", reply);
        Assert.Contains("Content-Length: 9\r\n", reply);
        Assert.EndsWith("\r\n\r\ntsv_up 1\n", reply);
        Assert.EndsWith("tsv_up 2\n", again); // rendered afresh for every scrape
    }

    [Fact]
    public void OtherPathsAndMethodsAreRefused()
    {
        Assert.True(MetricsEndpoint.TryParse("127.0.0.1:1", out var e, out _));
        using var server = MetricsServer.Start(e! with { Address = new IPEndPoint(IPAddress.Loopback, 0) }, () => "x\n");

        Assert.StartsWith("HTTP/1.1 404 ", Get(server.LocalEndPoint, "GET /status HTTP/1.1\r\n\r\n"));
        Assert.StartsWith("HTTP/1.1 405 ", Get(server.LocalEndPoint, "POST /metrics HTTP/1.1\r\n\r\n"));
        Assert.StartsWith("HTTP/1.1 400 ", Get(server.LocalEndPoint, "garbage\r\n\r\n"));
        // HEAD: the headers only.
        Assert.EndsWith("\r\n\r\n", Get(server.LocalEndPoint, "HEAD /metrics HTTP/1.1\r\n\r\n"));
    }

    [Fact]
    [System.Runtime.Versioning.SupportedOSPlatform("linux")]
    public void AUnixSocketIsTheOwnersOnlyAndReplacesAStaleOne()
    {
        string path = Path.Combine(_dir, "metrics.sock");
        // A socket left behind by a daemon that crashed (.NET's Socket would delete its file on close).
        BindAndClose(path);
        Assert.True(File.Exists(path));

        Assert.True(MetricsEndpoint.TryParse(path, out var e, out _));
        using (var server = MetricsServer.Start(e!, () => "tsv_up 1\n"))
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
            Assert.EndsWith("tsv_up 1\n", Get(new UnixDomainSocketEndPoint(path), "GET /metrics HTTP/1.1\r\n\r\n"));
        }
        Assert.False(File.Exists(path)); // removed on stop
    }

    private static unsafe void BindAndClose(string path)
    {
        int fd = Libc.socket(1 /* AF_UNIX */, 1 /* SOCK_STREAM */, 0);
        Assert.True(fd >= 0);
        var address = new byte[110]; // sockaddr_un: sun_family, sun_path
        address[0] = 1;
        Encoding.UTF8.GetBytes(path).CopyTo(address, 2);
        fixed (byte* a = address) Assert.Equal(0, Libc.bind(fd, a, (uint)address.Length));
        Libc.close(fd);
    }

    [Fact]
    public void AFileThatIsNotASocketIsLeftAloneAndTheStartFails()
    {
        string path = Path.Combine(_dir, "precious");
        File.WriteAllText(path, "data");
        Assert.True(MetricsEndpoint.TryParse(path, out var e, out _));

        var error = Assert.Throws<IOException>(() => MetricsServer.Start(e!, () => ""));

        Assert.Contains(path, error.Message);
        Assert.Equal("data", File.ReadAllText(path));
    }
}
