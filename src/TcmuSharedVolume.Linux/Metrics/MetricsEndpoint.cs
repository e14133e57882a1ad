using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace TcmuSharedVolume.Linux.Metrics;

/// <summary>
/// Where the metrics endpoint listens (<c>metrics_listen</c>): a loopback TCP address
/// (<c>127.0.0.1:PORT</c>, <c>[::1]:PORT</c>, <c>localhost:PORT</c>) or an absolute path of a unix
/// socket. Nothing else: the endpoint has no authentication, so it never listens beyond the host.
/// </summary>
public sealed record MetricsEndpoint(EndPoint Address, string Text)
{
    public bool IsUnixSocket => Address is UnixDomainSocketEndPoint;

    public static bool TryParse(string value, out MetricsEndpoint? endpoint, out string error)
    {
        endpoint = null;
        error = "";
        value = value.Trim();
        if (value.StartsWith('/'))
        {
            if (value.EndsWith('/') || value.Length > 107) // sun_path holds 108 bytes with the NUL
            {
                error = $"'{value}' is not a usable unix socket path (a file name, at most 107 bytes)";
                return false;
            }
            endpoint = new MetricsEndpoint(new UnixDomainSocketEndPoint(value), value);
            return true;
        }
        int colon = value.LastIndexOf(':');
        if (colon <= 0 || !ushort.TryParse(value.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out ushort port) || port == 0)
        {
            error = $"expected 127.0.0.1:PORT, [::1]:PORT, localhost:PORT or an absolute unix socket path, got '{value}'";
            return false;
        }
        string host = value[..colon];
        IPAddress? address = host switch
        {
            "localhost" => IPAddress.Loopback,
            ['[', .. var inner, ']'] when IPAddress.TryParse(inner, out var v6) => v6,
            _ when IPAddress.TryParse(host, out var v4) && !host.Contains(':') => v4,
            _ => null,
        };
        if (address is null || !IPAddress.IsLoopback(address))
        {
            error = $"'{host}' is not a loopback address: the metrics endpoint has no authentication, so it listens on " +
                    "127.0.0.1, [::1] or a unix socket only (let node_exporter or a local proxy publish it)";
            return false;
        }
        endpoint = new MetricsEndpoint(new IPEndPoint(address, port), value);
        return true;
    }
}
