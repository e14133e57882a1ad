using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class LibRados
{
    /// <summary>Returns the value's length, or a negative errno (-ENODATA: no such xattr; -ERANGE: buffer too small).</summary>
    [LibraryImport(Library, EntryPoint = "rados_getxattr", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int rados_getxattr(nint ioctx, string oid, string name, byte* buffer, nuint length);
}
