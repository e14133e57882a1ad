using System.Net.Sockets;
using System.Text;
using TcmuSharedVolume.Diagnostics;
using TcmuSharedVolume.Interop;

namespace TcmuSharedVolume.Linux.Metrics;

/// <summary>
/// The metrics endpoint: a minimal HTTP/1.1 server on its own background thread that answers
/// <c>GET /metrics</c> (and <c>GET /</c>) with the page <paramref name="render"/> builds, one
/// request per connection. It never touches the data path: rendering reads the counters.
/// A unix socket is created mode 0600 (the daemon's user only).
/// </summary>
public sealed class MetricsServer : IDisposable
{
    private const int MaxRequestBytes = 8192;
    private static readonly TimeSpan ClientTimeout = TimeSpan.FromSeconds(5);

    private readonly Socket _listener;
    private readonly Func<string> _render;
    private readonly Thread _thread;
    private readonly MetricsEndpoint _endpoint;
    private volatile bool _disposed;

    private MetricsServer(Socket listener, MetricsEndpoint endpoint, Func<string> render)
    {
        _listener = listener;
        _endpoint = endpoint;
        _render = render;
        _thread = new Thread(AcceptLoop) { IsBackground = true, Name = "metrics" };
        _thread.Start();
    }

    /// <summary>The endpoint as bound (a TCP port 0 becomes the port the kernel chose).</summary>
    public System.Net.EndPoint LocalEndPoint => _listener.LocalEndPoint!;

    /// <exception cref="IOException">The address cannot be bound (in use, no permission).</exception>
    public static MetricsServer Start(MetricsEndpoint endpoint, Func<string> render)
    {
        Socket socket;
        try
        {
            // Creating the socket fails too where the family is not allowed (a unit's
            // RestrictAddressFamilies=): that must be the same logged refusal, not a crash.
            socket = endpoint.IsUnixSocket
                ? new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified)
                : new Socket(endpoint.Address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        }
        catch (SocketException e)
        {
            throw new IOException($"metrics endpoint {endpoint.Text}: {e.Message}", e);
        }
        try
        {
            if (endpoint.IsUnixSocket)
            {
                // A socket left by a previous run (or a crash) would make bind fail; anything
                // else at that path is the administrator's and stays (bind then fails).
                if (IsSocket(endpoint.Text)) File.Delete(endpoint.Text);
                socket.Bind(endpoint.Address);
                if (OperatingSystem.IsLinux()) File.SetUnixFileMode(endpoint.Text, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            }
            else
            {
                socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
                socket.Bind(endpoint.Address);
            }
            socket.Listen(16);
        }
        catch (Exception e) when (e is SocketException or IOException or UnauthorizedAccessException)
        {
            socket.Dispose();
            throw new IOException($"metrics endpoint {endpoint.Text}: {e.Message}", e);
        }
        return new MetricsServer(socket, endpoint, render);
    }

    private static unsafe bool IsSocket(string path)
    {
        StatBuffer st;
        return Libc.lstat(path, &st) == 0 && st.IsSocket;
    }

    private void AcceptLoop()
    {
        while (!_disposed)
        {
            Socket client;
            try
            {
                client = _listener.Accept();
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                if (_disposed) return;
                Log.Warning($"metrics endpoint {_endpoint.Text}: accept: {e.Message}");
                Thread.Sleep(100);
                continue;
            }
            using (client)
            {
                try
                {
                    Serve(client);
                }
                catch (Exception e) when (e is SocketException or IOException or ObjectDisposedException)
                {
                    // The scraper went away or sent nothing in time: its problem, not the daemon's.
                }
                catch (Exception e)
                {
                    Log.Error($"metrics endpoint {_endpoint.Text}: {e}");
                }
            }
        }
    }

    private void Serve(Socket client)
    {
        client.ReceiveTimeout = (int)ClientTimeout.TotalMilliseconds;
        client.SendTimeout = (int)ClientTimeout.TotalMilliseconds;
        var request = new byte[MaxRequestBytes];
        int length = 0;
        while (length < request.Length)
        {
            int n = client.Receive(request, length, request.Length - length, SocketFlags.None);
            if (n == 0) break;
            length += n;
            if (request.AsSpan(0, length).IndexOf("\r\n\r\n"u8) >= 0 || request.AsSpan(0, length).IndexOf("\n\n"u8) >= 0) break;
        }
        string head = Encoding.ASCII.GetString(request, 0, length);
        string line = head.Split('\n', 2)[0].TrimEnd('\r');
        var parts = line.Split(' ');
        if (parts.Length < 2 || !parts[0].StartsWith("HTTP/", StringComparison.Ordinal) && parts.Length != 3)
        {
            Reply(client, "400 Bad Request", "text/plain; charset=utf-8", "bad request\n", head: false);
            return;
        }
        string path = parts[1].Split('?', 2)[0];
        bool isHead = parts[0] == "HEAD";
        if (parts[0] is not ("GET" or "HEAD"))
            Reply(client, "405 Method Not Allowed", "text/plain; charset=utf-8", "only GET\n", head: false);
        else if (path is not ("/metrics" or "/"))
            Reply(client, "404 Not Found", "text/plain; charset=utf-8", "the metrics are at /metrics\n", isHead);
        else
            Reply(client, "200 OK", PrometheusText.ContentType, _render(), isHead);
    }

    private static void Reply(Socket client, string status, string contentType, string body, bool head)
    {
        var content = Encoding.UTF8.GetBytes(body);
        var header = Encoding.ASCII.GetBytes(
            $"HTTP/1.1 {status}\r\nContent-Type: {contentType}\r\nContent-Length: {content.Length}\r\nConnection: close\r\n\r\n");
        client.Send(header);
        if (!head) client.Send(content);
        client.Shutdown(SocketShutdown.Send);
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _listener.Dispose(); // Accept returns with an exception
        _thread.Join(TimeSpan.FromSeconds(2));
        if (_endpoint.IsUnixSocket)
        {
            try { File.Delete(_endpoint.Text); }
            catch (IOException) { }
        }
    }
}
