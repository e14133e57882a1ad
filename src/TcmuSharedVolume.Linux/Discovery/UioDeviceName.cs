using System.Diagnostics.CodeAnalysis;
using System.Globalization;

namespace TcmuSharedVolume.Linux.Discovery;

/// <summary>The name a TCMU device's UIO device carries in sysfs and in netlink: <c>tcm-user/&lt;hba&gt;/&lt;name&gt;/&lt;dev_config&gt;</c>.</summary>
public static class UioDeviceName
{
    public const string Prefix = "tcm-user/";

    /// <summary>
    /// Splits a UIO name <c>tcm-user/&lt;hba&gt;/&lt;name&gt;/&lt;dev_config&gt;</c> (K6.1 <c>tcmu_update_uio_info</c>).
    /// The dev_config may itself contain slashes; it is empty when the device has none.
    /// </summary>
    public static bool TryParse(string? uioName, out int hbaIndex, [NotNullWhen(true)] out string? deviceName, [NotNullWhen(true)] out string? devConfig)
    {
        hbaIndex = 0;
        deviceName = null;
        devConfig = null;
        if (uioName is null) return false;
        var s = uioName.AsSpan().TrimEnd("\r\n");
        if (!s.StartsWith(Prefix, StringComparison.Ordinal)) return false;
        s = s[Prefix.Length..];
        int slash = s.IndexOf('/');
        if (slash <= 0 || !int.TryParse(s[..slash], NumberStyles.None, CultureInfo.InvariantCulture, out hbaIndex))
            return false;
        s = s[(slash + 1)..];
        slash = s.IndexOf('/');
        var name = slash < 0 ? s : s[..slash];
        if (name.IsEmpty) return false;
        deviceName = name.ToString();
        devConfig = slash < 0 ? "" : s[(slash + 1)..].ToString();
        return true;
    }
}
